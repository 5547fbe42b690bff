"""Linear-stability theory of the patch model (DESIGN.md section 3, docs/theory.md)."""
