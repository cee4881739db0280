"""Real robots: drivers behind one interface (`base.Arm`), OpenCV cameras and the one safety layer."""
