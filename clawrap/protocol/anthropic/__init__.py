"""The Anthropic Messages surface: pydantic models, decoder, encoder and the dialect."""
