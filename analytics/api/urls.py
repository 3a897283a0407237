from __future__ import annotations

from django.urls import path

from analytics.api import views

urlpatterns = [
    path("summary", views.SummaryView.as_view(), name="analytics-summary"),
    path("top-keys", views.TopKeysView.as_view(), name="analytics-top-keys"),
    path("top-routes", views.TopRoutesView.as_view(), name="analytics-top-routes"),
    path("cache-hit-rate", views.CacheHitRateView.as_view(), name="analytics-cache-hit-rate"),
    path("logs", views.LogsView.as_view(), name="analytics-logs"),
]
