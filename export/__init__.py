"""emotrack.export: torch -> ONNX with a parity gate, and the model card (needs emotrack[train])."""
