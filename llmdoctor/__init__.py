"""llmdoctor: an environment doctor for local LLM fine-tuning and inference."""

__version__ = "0.1.0"
