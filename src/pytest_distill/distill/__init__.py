"""Distillation: the gate, the checked training file, and the training backends."""
