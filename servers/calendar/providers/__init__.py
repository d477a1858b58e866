"""Calendar provider connectors."""
