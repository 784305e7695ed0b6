"""The optimisation pipeline behind ``natopt optimize``: data, quality, search, fine-tuning."""
