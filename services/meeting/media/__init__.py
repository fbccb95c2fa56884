"""The meeting region's media plane: the relay pool that issues keys and moves calls on failure."""
