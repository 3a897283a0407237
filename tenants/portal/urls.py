"""`/portal/`: the customer portal's resources (no trailing slashes)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.portal import views

router = SimpleRouter(trailing_slash=False)
router.register("keys", views.PortalApiKeyViewSet, basename="portal-key")
router.register("routes", views.PortalRouteViewSet, basename="portal-route")
router.register("plans", views.PortalPlanViewSet, basename="portal-plan")

urlpatterns = [
    # One of each per tenant, so no id: explicit action maps instead of the router's.
    path("tenant", views.PortalTenantViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
         name="portal-tenant"),
    path("subscription", views.PortalSubscriptionViewSet.as_view({"get": "retrieve", "post": "change_plan"}),
         name="portal-subscription"),
    path("usage", views.PortalUsageView.as_view(), name="portal-usage"),
    *router.urls,
]
