"""The conversation list on every chat page, without each page's view building it."""

from django import template

from chat import sidebar

register = template.Library()


@register.simple_tag(takes_context=True)
def sidebar_page(context, archived: bool = False) -> sidebar.SidebarPage:
    """The first page of the list for the request's user (one query)."""
    return sidebar.sidebar_page(context["request"].user, archived=archived)
