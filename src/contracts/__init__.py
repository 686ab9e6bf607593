"""Versioned payloads of the jobs and HTTP calls between the services.

A job's payload is the ``model_dump(mode="json")`` of one of these models; the consumer
validates it with the same model. Adding an optional field is compatible; anything else
needs a new version (``v2``) of the model and its job name.
"""
