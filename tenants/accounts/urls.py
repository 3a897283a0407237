"""`/auth/`: signup, verification, login and tokens, passwords (no trailing slashes)."""

from __future__ import annotations

from django.urls import path

from tenants.accounts import views

urlpatterns = [
    path("signup", views.SignupView.as_view(), name="auth-signup"),
    path("verify-email", views.VerifyEmailView.as_view(), name="auth-verify-email"),
    path("verify-email/resend", views.ResendCodeView.as_view(), name="auth-verify-email-resend"),
    path("login", views.LoginView.as_view(), name="auth-login"),
    path("refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("logout", views.LogoutView.as_view(), name="auth-logout"),
    path("me", views.MeView.as_view(), name="auth-me"),
    path("password/change", views.PasswordChangeView.as_view(), name="auth-password-change"),
    path("password/reset", views.PasswordResetView.as_view(), name="auth-password-reset"),
    path("password/reset/confirm", views.PasswordResetConfirmView.as_view(), name="auth-password-reset-confirm"),
]
