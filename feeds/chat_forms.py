"""The chat page's form: create a public room."""

from django import forms

from feeds.models import Room


class RoomCreateForm(forms.Form):
    title = forms.CharField(
        max_length=Room._meta.get_field("title").max_length,
        strip=True,
        widget=forms.TextInput(
            attrs={"placeholder": "e.g. Release planning", "autocomplete": "off"}
        ),
    )
