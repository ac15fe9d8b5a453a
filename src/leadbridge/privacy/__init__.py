"""Privacy: IP masking, Do-Not-Track and opt-out, erasure, retention."""
