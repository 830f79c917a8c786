"""The OpenAI Chat Completions surface: decoder, encoder and the dialect tying them."""
