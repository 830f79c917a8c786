"""The OpenAI Responses API surface: decoder, encoders and the dialect tying them."""
