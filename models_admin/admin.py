from django.contrib import admin

from models_admin.models import Pull


@admin.register(Pull)
class PullAdmin(admin.ModelAdmin):
    # Read-only: a pull's row is written by its task (models_admin/services.py).
    list_display = ["model", "host", "status", "requested_by", "started", "finished"]
    list_filter = ["status", "host"]
    list_select_related = ["requested_by"]
    search_fields = ["model"]
    readonly_fields = [field.name for field in Pull._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
