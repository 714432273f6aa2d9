"""The only SQLAlchemy code of the platform: declarative base, engine/session factories, models."""
