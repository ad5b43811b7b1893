"""SavedModels for TensorFlow Serving: raw text in, tags and expert weights out."""
