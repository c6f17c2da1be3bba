"""Actors and learners that act in environments or fit models of humans."""
