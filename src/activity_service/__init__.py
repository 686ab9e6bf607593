"""activity_service: activities, segments, business events, task progress and evaluation."""
