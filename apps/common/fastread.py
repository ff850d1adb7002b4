"""A fast read path for the serializers of list and detail endpoints, with DRF's output.

DRF pays for every row what is the same for every row: `to_representation` walks the bound
fields through generators, each `get_attribute` goes through `source_attrs` with a try/except,
a DateTimeField looks the current time zone up again for each value, and the serializer
instance of every request deep-copies and binds its declared fields again (`get_fields()`,
~40 fields for a campaign). `FastReadMixin` does that work once per serializer class: it binds
one template instance of the class (no request, no context) and compiles, from its readable
fields, one reader per field — `(instance, time zone) -> value` — that reproduces that
field's DRF output for the values it knows and hands everything else to the template's own
bound field, so the output is DRF's by construction:

* a plain model column (`source` one concrete field of the serializer's model) is read in
  line in one generated function per class (`compile_row_reader`: one call per row, not per
  field); a primary-key relation reads the `<name>_id` column, as DRF's pk-only optimisation
  does; `source="fk.column"` reads the column of the (select_related) row;
* the value is converted as the exact field class would (CharField, UUIDField, IntegerField,
  FloatField, BooleanField, ChoiceField, JSONField, DateTimeField and DateField in ISO 8601,
  Dict/ListFields of those or of a FastReadMixin serializer), by the field's own
  `to_representation` called directly when its class sets `pure_representation = True`
  (the output depends on the value alone), else through DRF;
* a SerializerMethodField calls the method of the serializer doing the work (its context);
* a nested serializer (one, or `many=True`) that is itself a FastReadMixin without method
  fields reads its rows with its own readers (a prefetched relation from its cache); any
  other nested serializer goes through DRF;
* a plain (non-model) serializer reads a dict's key or an object's attribute, a model
  serializer an annotation of its rows (a name its model class does not have); anything
  unusual there (missing, callable, raising) is read again through DRF;
* anything else (properties, defaults, custom fields, a missing related row) goes through
  the template's bound field: `get_attribute`, the None check and `to_representation` of DRF;
* `many=True` gives a FastListSerializer: the current time zone is looked up once per list.

Only for serializers whose fields do not depend on the request: field classes that need the
context (hyperlinked relations, hidden fields) are refused when the readers are compiled.
Writes and validation are untouched. `drf_output()` switches the fast path off, for the
tests that compare the two outputs.
"""

import contextlib
import datetime
import threading
import uuid
import zoneinfo
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import orjson
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.utils import timezone
from rest_framework import fields as drf_fields
from rest_framework import relations, serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

Reader = Callable[[Any, Any, Any], Any]  # (serializer, instance, time zone) -> value
# Output zones whose every offset is zero. orjson writes a date-time with a whole-minute
# offset exactly as isoformat() does, and a zero one as DRF's "Z" (OPT_UTC_Z), in a third of
# the instructions (isoformat builds its text with PyUnicode_FromFormat); an offset with
# seconds (a zone's LMT) it writes without them, so other zones keep isoformat().
UTC_ZONES = frozenset((zoneinfo.ZoneInfo("UTC"), datetime.UTC))
SKIP = object()  # the field is left out of the output (DRF's SkipField)
_switch = threading.local()

CONTEXT_BOUND = (relations.HyperlinkedRelatedField, drf_fields.HiddenField)
TEXT_FIELDS = (
    drf_fields.CharField,
    drf_fields.EmailField,
    drf_fields.URLField,
    drf_fields.SlugField,
    drf_fields.RegexField,
    drf_fields.IPAddressField,
)


@contextlib.contextmanager
def drf_output():
    """Serialize with DRF's own `to_representation` in this thread (the reference output)."""
    previous = getattr(_switch, "off", False)
    _switch.off = True
    try:
        yield
    finally:
        _switch.off = previous


def enabled() -> bool:
    """Whether this thread serializes by the fast path (not inside drf_output())."""
    return not getattr(_switch, "off", False)


# Put first in the bases of a (Model)Serializer: `class X(FastReadMixin, ModelSerializer)`.
# No docstring: drf-spectacular documents a serializer with its (inherited) docstring.
class FastReadMixin:
    def to_representation(self, instance):
        if getattr(_switch, "off", False):
            return super().to_representation(instance)
        return type(self)._row_reader()(self, instance, timezone.get_current_timezone())

    @classmethod
    def many_init(cls, *args, **kwargs):
        many = super().many_init(*args, **kwargs)
        if type(many) is serializers.ListSerializer:  # not a Meta.list_serializer_class
            many.__class__ = FastListSerializer  # the same object, one method more
        return many

    @classmethod
    def _row_reader(cls) -> Callable[[Any, Any, Any], dict]:
        # Per class, not inherited: a subclass has its own fields.
        row_reader = cls.__dict__.get("_fast_row_reader")
        if row_reader is None:
            row_reader = compile_row_reader(cls._readers(), cls.__name__)
            cls._fast_row_reader = row_reader
        return row_reader

    @classmethod
    def _readers(cls) -> tuple[tuple[str, Reader], ...]:
        readers = cls.__dict__.get("_fast_readers")
        if readers is None:
            readers = tuple(
                (field.field_name, compile_reader(field, cls)) for field in cls._template_fields()
            )
            cls._fast_readers = readers
        return readers

    @classmethod
    def _template_fields(cls) -> list:
        """The readable fields of one bound instance of the class, made without a context."""
        fields = cls.__dict__.get("_fast_template_fields")
        if fields is None:
            fields = list(cls()._readable_fields)
            cls._fast_template_fields = fields
        return fields

    @classmethod
    def _reads_rows_alone(cls) -> bool:
        """Whether rows can be read without an instance of the class (as a nested child)."""
        return cls.to_representation is FastReadMixin.to_representation and not any(
            isinstance(field, serializers.SerializerMethodField) for field in cls._template_fields()
        )


class FastListSerializer(serializers.ListSerializer):
    """`many=True` of a FastReadMixin: the time zone looked up once per list, not per row."""

    def to_representation(self, data):
        child = self.child
        if getattr(_switch, "off", False) or (
            type(child).to_representation is not FastReadMixin.to_representation
        ):
            return super().to_representation(data)
        rows = data.all() if isinstance(data, models.manager.BaseManager) else data
        read_row = type(child)._row_reader()
        tz = timezone.get_current_timezone()
        return [read_row(child, row, tz) for row in rows]

    @property
    def data(self):
        data = super().data
        if self.instance is not None and not hasattr(self, "initial_data"):
            # A read, serialized (`data` is kept): let go of the rows. A request's objects
            # are reference cycles (view, request, response) that only the cyclic collector
            # frees, and the rows held here — as the instance, and as the argument DRF keeps
            # (`_args`) on this serializer and its child — waited for it with them: ~600
            # objects a page of 50, a young collection about every request.
            for serializer in (self, self.child):
                serializer.instance, serializer._args = None, ()
        return data


def compile_row_reader(readers, name: str) -> Callable[[Any, Any, Any], dict]:
    """One function that builds a row's dict from `readers` in order: one call per row
    instead of one per field, model columns read in line, and only a field that can be
    left out (SKIP) checked for it."""
    lines = ["def read_row(serializer, instance, tz):", "    row = {}"]
    scope = {"SKIP": SKIP, "UTC_ZONES": UTC_ZONES, "DATETIME": datetime.datetime}
    scope.update(dumps=orjson.dumps, UTC_Z=orjson.OPT_UTC_Z)
    if any(getattr(getattr(reader, "convert", None), "utc_inline", False) for _, reader in readers):
        lines.append("    utc = tz in UTC_ZONES")
    for index, (field_name, reader) in enumerate(readers):
        column, convert = getattr(reader, "column", None), getattr(reader, "convert", None)
        if column is not None and column.isidentifier():
            # A model column: read and converted in line (None stays None, as in DRF).
            lines.append(f"    value = instance.{column}")
            if getattr(convert, "utc_inline", False):
                # A date-time in UTC for a UTC output zone: _datetime's first case, in line
                # (a call per value cost a quarter of a page of deliveries' date-times).
                scope[f"convert_{index}"] = convert
                lines.append(
                    f"    row[{field_name!r}] = None if value is None else ("
                    f"dumps(value, option=UTC_Z)[1:-1].decode() "
                    f"if utc and type(value) is DATETIME and value.tzinfo in UTC_ZONES "
                    f"else convert_{index}(value, tz))"
                )
            elif convert is _identity:
                lines.append(f"    row[{field_name!r}] = value")
            elif convert is _text:
                lines.append(f"    row[{field_name!r}] = None if value is None else str(value)")
            else:
                scope[f"convert_{index}"] = convert
                lines.append(
                    f"    row[{field_name!r}] = None if value is None else convert_{index}(value, tz)"
                )
            continue
        scope[f"read_{index}"] = reader
        lines.append(f"    value = read_{index}(serializer, instance, tz)")
        lines.append(f"    if value is not SKIP:\n        row[{field_name!r}] = value")
    lines.append("    return row")
    exec(compile("\n".join(lines), f"<fast row reader of {name}>", "exec"), scope)  # noqa: S102
    return scope["read_row"]


def compile_reader(field, serializer_class) -> Reader:
    if isinstance(field, CONTEXT_BOUND):
        raise TypeError(
            f"{serializer_class.__name__}.{field.field_name}: {type(field).__name__} needs "
            "the request context; FastReadMixin cannot read it."
        )
    if isinstance(field, serializers.SerializerMethodField):
        method_name = field.method_name
        return lambda serializer, instance, tz: getattr(serializer, method_name)(instance)
    if isinstance(field, serializers.ListSerializer) and _fast_child(field.child):
        return _nested_many(field)
    if _fast_child(field):
        return _nested_one(field)
    convert = _converter(field)
    if convert is None:
        return _through_drf(field)
    column = _model_column(field, serializer_class)
    if column is not None:
        get = attrgetter(column)

        def read(serializer, instance, tz):
            value = get(instance)
            return None if value is None else convert(value, tz)

        read.column, read.convert = column, convert  # compile_row_reader inlines them
        return read
    related = _related_column(field, serializer_class)
    if related is not None:
        return _related_value(field, *related, convert)
    if len(field.source_attrs) == 1 and not _on_model(field.source_attrs[0], serializer_class):
        return _plain_value(field, convert)  # a dict's key, an object's or an annotation
    return _through_drf(field)


def _related_column(field, serializer_class) -> tuple[str, str] | None:
    """(foreign key, column of the related row) for a `source="fk.column"` field."""
    model = getattr(getattr(serializer_class, "Meta", None), "model", None)
    if model is None or len(field.source_attrs) != 2 or isinstance(field, relations.RelatedField):
        return None
    fk_name, column = field.source_attrs
    try:
        fk = model._meta.get_field(fk_name)
        target = fk.related_model._meta.get_field(column) if fk.many_to_one else None
    except FieldDoesNotExist:
        return None
    if target is None or fk_name != fk.name or not target.concrete or target.is_relation:
        return None
    return fk_name, target.attname


def _related_value(field, fk_name, column, convert) -> Reader:
    """A column of the row a foreign key points to (select_related it); no row there (a null
    or dangling key) is DRF's business: its default, None or SkipField."""
    by_drf = _through_drf(field)

    def read(serializer, instance, tz):
        try:
            related = getattr(instance, fk_name)
        except ObjectDoesNotExist:
            related = None
        if related is None:
            return by_drf(serializer, instance, tz)
        value = getattr(related, column)
        return None if value is None else convert(value, tz)

    return read


def _on_model(name: str, serializer_class) -> bool:
    """Whether `name` is something of the serializer's model class (a field, a property, a
    method): DRF's rules read it. An annotation of the queryset is not."""
    model = getattr(getattr(serializer_class, "Meta", None), "model", None)
    return model is not None and hasattr(model, name)


def _plain_value(field, convert) -> Reader:
    """A key of a dict, or an attribute of another object; whatever is not a plain value
    there (missing, a callable, an error) is read again by DRF, which knows what to do."""
    key = field.source_attrs[0]
    by_drf = _through_drf(field)

    def read(serializer, instance, tz):
        try:
            value = instance[key] if type(instance) is dict else getattr(instance, key)
        except Exception:  # DRF decides: its default, SkipField or its error
            return by_drf(serializer, instance, tz)
        if callable(value):
            return by_drf(serializer, instance, tz)
        return None if value is None else convert(value, tz)

    return read


def _model_column(field, serializer_class) -> str | None:
    """The attribute holding the field's value on a model row, when reading it cannot fail."""
    model = getattr(getattr(serializer_class, "Meta", None), "model", None)
    if model is None or len(field.source_attrs) != 1:
        return None
    source = field.source_attrs[0]
    try:
        model_field = model._meta.get_field(source)
    except FieldDoesNotExist:  # a property or a method: DRF reads it
        return None
    if not model_field.concrete:
        return None
    if isinstance(field, relations.PrimaryKeyRelatedField):
        if field.pk_field is not None or not isinstance(model_field, models.ForeignKey):
            return None
        return model_field.attname  # DRF's pk-only optimisation reads the same column
    if isinstance(field, relations.RelatedField):
        return None
    if model_field.is_relation and source != model_field.attname:
        return None  # the related row itself, not its id
    return model_field.attname


def _identity(value, tz):
    return value


def _text(value, tz):
    return str(value)


def _uuid_text(value, tz):
    # str(uuid) is Python code (a % format of the int): orjson writes the same text in C.
    return orjson.dumps(value)[1:-1].decode() if type(value) is uuid.UUID else str(value)


def _converter(field) -> Callable[[Any, Any], Any] | None:
    """`(value, tz) -> output` exactly as `type(field).to_representation` for a non-None
    value, or None when only the field itself knows."""
    kind = type(field)
    if getattr(kind, "pure_representation", False):
        # The field class says its output depends on the value alone (apps.common.serializers).
        to_representation = field.to_representation
        return lambda value, tz: to_representation(value)
    if _fast_child(field):  # a nested serializer as a Dict/ListField's child
        child_class = type(field)
        return lambda value, tz: _read_row(child_class, value, tz)
    if isinstance(field, relations.PrimaryKeyRelatedField):
        # DRF's output is the key itself (PKOnlyObject(pk).pk): the renderer (orjson) writes
        # a UUID in C.
        return _identity
    if kind is drf_fields.UUIDField and field.uuid_format == "hex_verbose":
        return _uuid_text
    if kind in TEXT_FIELDS:
        return _text
    if kind is drf_fields.IntegerField:
        return lambda value, tz: int(value)
    if kind is drf_fields.FloatField:
        return lambda value, tz: float(value)
    if kind is drf_fields.BooleanField:
        to_representation = field.to_representation
        return lambda value, tz: (
            value if value is True or value is False else to_representation(value)
        )
    if kind is drf_fields.JSONField and not field.binary:
        return _identity
    if kind in (drf_fields.DictField, drf_fields.ListField):
        return _container(field)
    if kind is drf_fields.ChoiceField:
        return _choice(field)
    if kind is drf_fields.DateTimeField and _iso(field, api_settings.DATETIME_FORMAT):
        return _datetime(field)
    if kind is drf_fields.DateField and _iso(field, api_settings.DATE_FORMAT):
        to_representation = field.to_representation
        return lambda value, tz: to_representation(value)
    return None


def _container(field):
    """DictField / ListField of a child this module converts: DRF's loops, inlined."""
    convert = _converter(field.child)
    if convert is None:
        return None
    if isinstance(field, drf_fields.DictField):
        return lambda value, tz: {
            str(key): None if item is None else convert(item, tz) for key, item in value.items()
        }
    return lambda value, tz: [None if item is None else convert(item, tz) for item in value]


def _iso(field, default_format) -> bool:
    output_format = getattr(field, "format", default_format)
    return isinstance(output_format, str) and output_format.lower() == drf_fields.ISO_8601


def _choice(field):
    by_string = field.choice_strings_to_values
    to_representation = field.to_representation

    def convert(value, tz):
        if type(value) is str:
            return value if value == "" else by_string.get(value, value)
        return to_representation(value)  # enums, numbers: DRF's own rules

    return convert


def _datetime(field):
    fixed = getattr(field, "timezone", drf_fields.empty)
    to_representation = field.to_representation

    def convert(value, tz):
        # Strings and naive values (made aware, or refused) are DRF's business.
        if type(value) is str or value.tzinfo is None:
            return to_representation(value)
        zone = tz if fixed is drf_fields.empty else fixed
        if zone is None:
            return to_representation(value)
        if zone in UTC_ZONES:
            # A value in either UTC object is written as it is (orjson writes "Z" for a zero
            # offset): psycopg's carry datetime.UTC, the output zone is ZoneInfo("UTC"), and
            # astimezone() between them cost as much as the formatting.
            if value.tzinfo not in UTC_ZONES:
                value = value.astimezone(zone)
            return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    convert.utc_inline = fixed is drf_fields.empty  # compile_row_reader writes its UTC case
    return convert


def _through_drf(field) -> Reader:
    """The template's bound field, as Serializer.to_representation uses it."""

    def read(serializer, instance, tz):
        try:
            attribute = field.get_attribute(instance)
        except SkipField:
            return SKIP
        check_for_none = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
        return None if check_for_none is None else field.to_representation(attribute)

    return read


def _fast_child(child) -> bool:
    return isinstance(child, FastReadMixin) and type(child)._reads_rows_alone()


def _nested_many(field) -> Reader:
    child_class = type(field.child)
    get_related = _through_drf_attribute(field)
    source = field.source_attrs[-1] if len(field.source_attrs) == 1 else None

    def read(serializer, instance, tz):
        # A prefetched relation is read from its cache: `.all()` would build a queryset per row
        # only to hand back the same list.
        prefetched = getattr(instance, "_prefetched_objects_cache", None)
        if source is not None and prefetched and source in prefetched:
            rows = prefetched[source]
        else:
            related = get_related(instance)
            if related is SKIP or related is None:
                return related
            rows = related.all() if isinstance(related, models.manager.BaseManager) else related
        return [_read_row(child_class, row, tz) for row in rows]

    return read


def _nested_one(field) -> Reader:
    child_class = type(field)
    get_related = _through_drf_attribute(field)

    def read(serializer, instance, tz):
        related = get_related(instance)
        if related is SKIP or related is None:
            return related
        return _read_row(child_class, related, tz)

    return read


def _read_row(serializer_class, row, tz) -> dict:
    return serializer_class._row_reader()(None, row, tz)


def _through_drf_attribute(field):
    def get(instance):
        try:
            return field.get_attribute(instance)
        except SkipField:
            return SKIP

    return get
