"""The scipion-kg OWL ontology, shipped as package data (Turtle modules, SHACL shapes, SPARQL rules)."""
