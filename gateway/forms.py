"""Admin form for routes: the plan's route cap, checked where the tenant is chosen."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from gateway.models import Route
from gateway.services import ensure_route_capacity


class RouteAdminForm(forms.ModelForm):
    class Meta:
        model = Route
        fields = "__all__"  # noqa: DJ007 - the ModelAdmin decides which fields it shows

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        tenant = cleaned.get("tenant")
        moving = self.instance.pk is None or (tenant is not None and self.instance.tenant_id != tenant.pk)
        if tenant is not None and moving:
            try:
                ensure_route_capacity(tenant)
            except ValidationError as error:
                self.add_error("tenant", error.message_dict.get("tenant", error.messages))
        return cleaned
