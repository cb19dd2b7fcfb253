"""Verification: do two images show the same identity? Embeddings from a trained classifier (DeepFace's
recipe) compared by distance; ROC, AUC, equal error rate and a threshold chosen on a separate split;
open-set evaluation on identities never seen in training."""
