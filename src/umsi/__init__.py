"""UMSI: Unified Model of Saliency and Importance."""
