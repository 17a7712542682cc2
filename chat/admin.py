from django.contrib import admin

from chat import services
from chat.models import Conversation, Message, Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "approved"]
    list_filter = ["approved"]
    actions = ["approve"]

    @admin.action(description="Approve the selected accounts")
    def approve(self, request, queryset):
        count = services.approve_users(queryset.values("user"))
        self.message_user(request, f"{count} account(s) approved.")


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "model", "updated"]
    list_select_related = ["owner"]
    search_fields = ["title", "owner__username"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["conversation", "role", "status", "created"]
    list_filter = ["role", "status"]
    list_select_related = ["conversation"]
    raw_id_fields = ["conversation"]
