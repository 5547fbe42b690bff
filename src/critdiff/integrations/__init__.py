"""The edge to other libraries (DESIGN.md section 7): each subpackage imports its library lazily."""
