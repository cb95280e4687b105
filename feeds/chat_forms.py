"""The chat pages' forms: create a room; add, remove or promote a private room's member."""

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
    private = forms.BooleanField(required=False, label="Private (members only)")


class DirectForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "username", "autocomplete": "off"}),
    )


class MemberChangeForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("add", "add"), ("remove", "remove"), ("promote", "promote")]
    )
    username = forms.CharField(
        max_length=150,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "username", "autocomplete": "off"}),
    )


class BlockForm(forms.Form):
    action = forms.ChoiceField(choices=[("block", "block"), ("unblock", "unblock")])
