"""The settings of a conversation (and a user's defaults for new ones): what they may
hold, with ranges, and how they map onto the Conversation fields sent to Ollama."""

import copy
import json
import re

import jsonschema
from django import forms

from chat import text
from ollama_layer.names import is_valid_model_name

THINK_CHOICES = [
    ("", "Model default"),
    ("true", "On"),
    ("false", "Off"),
    ("low", "Low"),
    ("medium", "Medium"),
    ("high", "High"),
    ("max", "Max"),
]
FORMAT_CHOICES = [("", "Free text"), ("json", "JSON"), ("schema", "JSON schema")]
# Go durations as Ollama parses them ("5m", "1h30m", "-1m"), or whole seconds ("3600", "-1").
# ASCII digits only: Go's parser reads no others ("٣m" would reach Ollama and fail there).
_DURATION = re.compile(r"-?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+|-?\d+", re.ASCII)
MAX_STOP_SEQUENCES = 8
MAX_SCHEMA_CHARS = 20_000

# Ollama option name -> form field. Ranges are wide enough for every real use and
# narrow enough to catch typos (temperature 70 instead of 0.7).
OPTION_FIELDS = {
    "temperature": forms.FloatField(min_value=0, max_value=5, required=False),
    "top_p": forms.FloatField(min_value=0, max_value=1, required=False),
    "top_k": forms.IntegerField(min_value=1, max_value=1000, required=False),
    "seed": forms.IntegerField(min_value=-(2**31), max_value=2**31 - 1, required=False),
    "num_ctx": forms.IntegerField(min_value=128, max_value=1_048_576, required=False),
    # -1: no limit; -2: until the context is full (Ollama's own special values).
    "num_predict": forms.IntegerField(min_value=-2, max_value=1_048_576, required=False),
    "repeat_penalty": forms.FloatField(min_value=0, max_value=5, required=False),
}


class SettingsForm(forms.Form):
    """Every text field refuses NUL and lone surrogates (chat.text), which a form post
    can't carry but an imported file's settings can (as JSON escapes)."""

    model = forms.CharField(max_length=200, required=False)
    system_prompt = forms.CharField(
        max_length=20_000, required=False, strip=False, validators=[text.validate_text]
    )
    stop = forms.CharField(
        required=False,
        strip=False,
        help_text="One stop sequence per line.",
        validators=[text.validate_text],
    )
    keep_alive = forms.CharField(max_length=20, required=False)
    think = forms.ChoiceField(choices=THINK_CHOICES, required=False)
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False)
    format_schema = forms.CharField(
        max_length=MAX_SCHEMA_CHARS, required=False, validators=[text.validate_text]
    )

    def __init__(self, *args, model_required: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in OPTION_FIELDS.items():
            self.fields[name] = copy.deepcopy(field)
        self.fields["model"].required = model_required

    def clean_model(self) -> str:
        model = self.cleaned_data["model"].strip()
        if model and not is_valid_model_name(model):
            raise forms.ValidationError("This is not a valid Ollama model name.")
        return model

    def clean_stop(self) -> list[str]:
        lines = [line for line in self.cleaned_data["stop"].splitlines() if line]
        if len(lines) > MAX_STOP_SEQUENCES:
            raise forms.ValidationError(f"At most {MAX_STOP_SEQUENCES} stop sequences.")
        if any(len(line) > 100 for line in lines):
            raise forms.ValidationError("A stop sequence is at most 100 characters.")
        return lines

    def clean_keep_alive(self) -> str:
        value = self.cleaned_data["keep_alive"].strip()
        if value and not _DURATION.fullmatch(value):
            raise forms.ValidationError(
                "Use a duration such as 5m, 1h or 30s, seconds such as 3600, "
                "-1 to keep the model loaded, or 0 to unload it after each answer."
            )
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("format") == "schema":
            cleaned["format_schema_value"] = self._schema(cleaned.get("format_schema", ""))
        return cleaned

    def _schema(self, source: str) -> dict | None:
        try:
            # At most text.JSON_MAX_DEPTH levels: jsonschema's check (and saving it)
            # recurse through the schema.
            schema = text.loads_json(source)
        except text.BadText as exc:
            self.add_error("format_schema", f"This {exc.message}.")
            return None
        if not isinstance(schema, dict):
            self.add_error("format_schema", "A JSON schema is a JSON object.")
            return None
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            self.add_error("format_schema", f"This is not a valid JSON schema: {exc.message}.")
            return None
        except RecursionError:
            # jsonschema takes about ten frames per level: within the depth cap this
            # only happens when the caller's own stack is already deep.
            self.add_error("format_schema", "This schema nests too deeply to be checked.")
            return None
        return schema

    # --- mapping onto the stored settings --------------------------------------------

    def values(self) -> dict:
        """The validated settings as stored on a Conversation (and in Profile.defaults)."""
        data = self.cleaned_data
        options = {name: data[name] for name in OPTION_FIELDS if data.get(name) is not None}
        if data["stop"]:
            options["stop"] = data["stop"]
        format_value = {"": None, "json": "json"}.get(data.get("format") or "")
        if data.get("format") == "schema":
            format_value = data["format_schema_value"]
        values = {
            "system_prompt": data["system_prompt"],
            "options": options,
            "keep_alive": data["keep_alive"],
            "think": data.get("think") or "",
            "format": format_value,
        }
        if data.get("model"):
            values["model"] = data["model"]
        return values


def as_settings(values: dict, model: str = "") -> dict:
    """Stored settings as the page's panel shows them (the same keys as the form)."""
    options = values.get("options") or {}
    format_value = values.get("format")
    return {
        "model": values.get("model", model) or model,
        "system_prompt": values.get("system_prompt", ""),
        **{name: options.get(name) for name in OPTION_FIELDS},
        "stop": list(options.get("stop") or []),
        "keep_alive": values.get("keep_alive", ""),
        "think": values.get("think", ""),
        "format": "schema" if isinstance(format_value, dict) else (format_value or ""),
        "format_schema": json.dumps(format_value, indent=2)
        if isinstance(format_value, dict)
        else "",
    }
