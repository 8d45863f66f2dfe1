"""signtrain: trains the sign-language LSTM that the live translator loads."""

__version__ = "0.1.0"
