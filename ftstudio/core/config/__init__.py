"""What a run is made of, as plain versioned JSON: the Recipe and the schema that validates it."""
