"""Serializer bases shared by the APIs."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers


class CleanModelSerializer(serializers.ModelSerializer):
    """Saves only after the model's own validation (`full_clean`), the same checks django-admin's
    forms run, for models whose writes need no service beyond it."""

    def create(self, validated_data: dict[str, Any]) -> models.Model:
        instance = self.Meta.model(**validated_data)
        instance.full_clean()
        instance.save()
        return instance

    def update(self, instance: models.Model, validated_data: dict[str, Any]) -> models.Model:
        for name, value in validated_data.items():
            setattr(instance, name, value)
        instance.full_clean()
        instance.save()
        return instance
