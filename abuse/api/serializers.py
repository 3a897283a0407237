from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from abuse.models import Block


class BlockSerializer(serializers.ModelSerializer):
    """The original's fields for a block (CONTRACT.md), from our Block row."""

    api_key_id = serializers.IntegerField(read_only=True, allow_null=True)
    blocked_at = serializers.DateTimeField(source="created_at", read_only=True)
    blocked_until = serializers.DateTimeField(source="expires_at", read_only=True)
    unblocked_at = serializers.DateTimeField(source="lifted_at", read_only=True)
    unblocked_by = serializers.SlugRelatedField(source="lifted_by", slug_field="username", read_only=True)
    unblock_reason = serializers.CharField(source="lift_reason", read_only=True)
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = Block
        fields = ["id", "api_key_id", "client_ip", "reason", "reason_detail", "anomaly_score", "rate_at_block",
                  "error_rate_at_block", "blocked_at", "blocked_until", "unblocked_at", "unblocked_by",
                  "unblock_reason", "is_active"]

    def get_is_active(self, block: Block) -> bool:
        return block.lifted_at is None and block.expires_at > timezone.now()


class UnblockSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class UnblockResultSerializer(serializers.Serializer):
    unblocked = serializers.BooleanField()
    blocks_cleared = serializers.IntegerField()
