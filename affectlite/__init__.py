"""affectlite: on-device facial emotion recognition (train, int8 TFLite, Raspberry Pi, Android)."""

__version__ = "0.1.0"
