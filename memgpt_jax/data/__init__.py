"""Data: TFDS builders prepared to array_record, tokenizers, and the Grain input pipeline."""
