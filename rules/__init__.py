"""Rules as data: YAML rule files compiled into predicates that turn events into alerts.

Modules: :mod:`rules.fields` (the field vocabulary and event flattening),
:mod:`rules.fields_template` (message templates), :mod:`rules.conditions` (compiled match and
time-of-day predicates), :mod:`rules.schema` (the rule file format and its validation),
:mod:`rules.schema_reference` (the generated reference ``rules/FIELDS.md``),
:mod:`rules.loader` (rule directories, checking, writing allow rules), :mod:`rules.indicators`
(indicator lists) and :mod:`rules.engine` (evaluation, suppression, reloading and the event
handler). ``rules/builtin/`` holds the shipped rules.
"""
