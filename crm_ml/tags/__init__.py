"""Tags: definitions, the built-in library, rule tagging with history, manual tags, sync."""

from crm_ml.tags.apply import apply_tags, check_apply_date, evaluate_tags
from crm_ml.tags.commands import tags_apply_command, tags_list_command
from crm_ml.tags.definitions import (
    TagDefinition,
    TagTemplate,
    TemplateParam,
    get_tag_definition,
    load_tag_definitions,
    require_tags,
    save_tag_definition,
    save_tag_definitions,
    tag_definitions_frame,
    tag_vocabulary,
)
from crm_ml.tags.history import customers_with_tag, tag_changes, tag_history, tag_sizes
from crm_ml.tags.id_files import FileTagging, tag_customers_from_file
from crm_ml.tags.library import TAG_TEMPLATES, builtin_tags, install_library
from crm_ml.tags.manual import batch_tag_from_rule, tag_customers, untag_customers
from crm_ml.tags.sync import SyncResult, read_watermarks, sync_tag, sync_tags
from crm_ml.tags.undo import undo_apply_tags

__all__ = [
    "TAG_TEMPLATES",
    "FileTagging",
    "SyncResult",
    "TagDefinition",
    "TagTemplate",
    "TemplateParam",
    "apply_tags",
    "batch_tag_from_rule",
    "builtin_tags",
    "check_apply_date",
    "customers_with_tag",
    "evaluate_tags",
    "get_tag_definition",
    "install_library",
    "load_tag_definitions",
    "read_watermarks",
    "require_tags",
    "save_tag_definition",
    "save_tag_definitions",
    "sync_tag",
    "sync_tags",
    "tag_changes",
    "tag_customers",
    "tag_customers_from_file",
    "tag_definitions_frame",
    "tag_history",
    "tag_sizes",
    "tag_vocabulary",
    "tags_apply_command",
    "tags_list_command",
    "undo_apply_tags",
    "untag_customers",
]
