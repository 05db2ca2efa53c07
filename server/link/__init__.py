"""The line between the engine and the web tier: what crosses it (commands, messages, encoded
frames, the weights replica) and how. Imports neither torch nor any web library."""
