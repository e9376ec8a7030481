//! The catalogue the simulator serves: `/audit/v1/actions`, `/audit/v1/schemas`, and the
//! action names the `action` filter accepts.
//!
//! The shapes are those of python-slack-sdk's fixtures (`actions_response.json`,
//! `schemas_response.json`). The action list is the fixture's, plus the newer actions the
//! generator emits (anomalies, canvases, huddles, MCP) so that every generated action can be
//! used as a filter, as on the live API whose list keeps growing.

use serde_json::{json, Value};

/// Actions by category, in the order `/actions` lists them.
pub(crate) const ACTIONS: &[(&str, &[&str])] = &[
    (
        "workspace_or_org",
        &[
            "workspace_created",
            "workspace_deleted",
            "organization_created",
            "organization_deleted",
            "organization_renamed",
            "organization_domain_changed",
            "organization_accepted_migration",
            "organization_declined_migration",
            "emoji_added",
            "emoji_removed",
            "emoji_aliased",
            "emoji_renamed",
            "billing_address_added",
            "migration_scheduled",
            "workspace_accepted_migration",
            "workspace_declined_migration",
            "migration_completed",
            "migration_dms_mpdms_completed",
            "corporate_exports_approved",
            "corporate_exports_enabled",
            "manual_export_started",
            "manual_export_completed",
            "manual_export_downloaded",
            "manual_export_deleted",
            "scheduled_export_started",
            "scheduled_export_completed",
            "scheduled_export_downloaded",
            "scheduled_export_deleted",
            "channels_export_started",
            "channels_export_completed",
            "channels_export_downloaded",
            "channels_export_deleted",
            "manual_user_export_started",
            "manual_user_export_completed",
            "manual_user_export_downloaded",
            "manual_user_export_deleted",
            "ekm_enrolled",
            "ekm_unenrolled",
            "ekm_key_added",
            "ekm_key_removed",
            "ekm_clear_cache_set",
            "ekm_logging_config_set",
            "ekm_slackbot_enroll_notification_sent",
            "ekm_slackbot_unenroll_notification_sent",
            "ekm_slackbot_rekey_notification_sent",
            "ekm_slackbot_logging_notification_sent",
            "approved_orgs_added",
            "approved_orgs_removed",
            "organization_verified",
            "organization_unverified",
            "organization_public_url_updated",
            "pref.admin_retention_override_changed",
            "pref.allow_calls",
            "pref.dlp_access_changed",
            "pref.allow_message_deletion",
            "pref.retention_override_changed",
            "pref.app_dir_only",
            "pref.app_whitelist_enabled",
            "pref.block_file_download_for_unapproved_ip",
            "pref.can_receive_shared_channels_invites",
            "pref.commands_only_regular",
            "pref.custom_tos",
            "pref.disallow_public_file_urls",
            "pref.display_real_names",
            "pref.dm_retention_changed",
            "pref.dnd_enabled",
            "pref.dnd_end_hour",
            "pref.dnd_start_hour",
            "pref.emoji_only_admins",
            "pref.ent_required_browser",
            "pref.enterprise_default_channels",
            "pref.block_download_and_copy_on_untrusted_mobile",
            "pref.enterprise_mobile_device_check",
            "pref.enterprise_team_creation_request",
            "pref.file_retention_changed",
            "pref.private_channel_retention_changed",
            "pref.hide_referers",
            "pref.loading_only_admins",
            "pref.mobile_secondary_auth_timeout_changed",
            "pref.msg_edit_window_mins",
            "pref.notification_redaction_type",
            "pref.required_minimum_mobile_version_changed",
            "pref.public_channel_retention_changed",
            "pref.session_duration_changed",
            "pref.session_duration_type_changed",
            "pref.sign_in_with_slack_disabled",
            "pref.slackbot_responses_disabled",
            "pref.slackbot_responses_only_admins",
            "pref.stats_only_admins",
            "pref.two_factor_auth_changed",
            "pref.username_policy",
            "pref.who_can_archive_channels",
            "pref.who_can_create_public_channels",
            "pref.who_can_create_delete_user_groups",
            "pref.who_can_create_private_channels",
            "pref.who_can_edit_user_groups",
            "pref.who_can_remove_from_public_channels",
            "pref.who_can_remove_from_private_channels",
            "pref.who_can_manage_channel_posting_prefs",
            "pref.who_can_manage_ext_shared_channels",
            "pref.who_can_manage_guests",
            "pref.who_can_manage_shared_channels",
            "pref.sso_setting_changed",
            "pref.anomaly_event_response_changed",
            "audit_logs_records_searched",
            "audit_logs_export_csv_started",
            "audit_logs_export_json_started",
            "team_authorized_ip_range_set",
        ],
    ),
    (
        "user",
        &[
            "custom_tos_accepted",
            "guest_created",
            "guest_deactivated",
            "guest_reactivated",
            "owner_transferred",
            "role_change_to_admin",
            "role_change_to_guest",
            "role_change_to_owner",
            "role_change_to_user",
            "user_created",
            "user_deactivated",
            "user_login",
            "user_login_failed",
            "user_logout",
            "user_reactivated",
            "guest_expiration_set",
            "guest_expiration_cleared",
            "guest_expired",
            "user_logout_compromised",
            "user_session_reset_by_admin",
            "user_session_invalidated",
            "user_logout_non_compliant_mobile_app_version",
            "user_force_upgrade_non_compliant_mobile_app_version",
            "anomaly",
            "user_session_reset_by_anomaly_event_response",
            "bulk_session_reset_by_admin",
            "user_logout_session_expired",
        ],
    ),
    (
        "file",
        &[
            "file_downloaded",
            "file_uploaded",
            "file_public_link_created",
            "file_public_link_revoked",
            "file_shared",
            "file_downloaded_blocked",
            "file_download_blocked",
            "file_malicious_content_detected",
        ],
    ),
    (
        "channel",
        &[
            "user_channel_join",
            "user_channel_leave",
            "guest_channel_join",
            "guest_channel_leave",
            "public_channel_created",
            "private_channel_created",
            "public_channel_deleted",
            "private_channel_deleted",
            "public_channel_archive",
            "private_channel_archive",
            "public_channel_unarchive",
            "private_channel_unarchive",
            "mpim_converted_to_private",
            "public_channel_converted_to_private",
            "group_converted_to_channel",
            "channel_workspaces_updated",
            "external_shared_channel_invite_sent",
            "external_shared_channel_invite_accepted",
            "external_shared_channel_invite_approved",
            "external_shared_channel_invite_created",
            "external_shared_channel_invite_declined",
            "external_shared_channel_invite_expired",
            "external_shared_channel_invite_revoked",
            "external_shared_channel_invite_auto_revoked",
            "external_shared_channel_connected",
            "external_shared_channel_disconnected",
            "external_shared_channel_reconnected",
            "channel_moved",
            "channel_posting_pref_changed_from_org_level",
            "channel_renamed",
            "channel_email_address_created",
            "channel_email_address_deleted",
            "private_channel_converted_to_public",
        ],
    ),
    (
        "app",
        &[
            "app_installed",
            "app_uninstalled",
            "app_scopes_expanded",
            "app_approved",
            "app_restricted",
            "app_removed_from_whitelist",
            "app_resources_granted",
            "app_token_preserved",
            "workflow_app_token_preserved",
            "bot_token_upgraded",
            "bot_token_downgraded",
            "org_app_workspace_added",
            "org_app_workspace_removed",
            "org_app_future_workspace_install_enabled",
            "org_app_future_workspace_install_disabled",
            "org_app_upgraded_to_org_install",
        ],
    ),
    (
        "workflow_builder",
        &[
            "workflow_created",
            "workflow_deleted",
            "workflow_published",
            "workflow_unpublished",
            "workflow_responses_csv_download",
        ],
    ),
    (
        "barrier",
        &["barrier_created", "barrier_updated", "barrier_deleted"],
    ),
    ("message", &["message_tombstoned", "message_restored"]),
    (
        "canvas",
        &[
            "canvas_created",
            "canvas_edited",
            "canvas_deleted",
            "canvas_shared",
        ],
    ),
    (
        "huddles",
        &["huddle_started", "huddle_ended", "huddle_recording_started"],
    ),
    (
        "slack_mcp_server",
        &[
            "mcp_slack_search_tool_called",
            "mcp_slack_read_channel_tool_called",
        ],
    ),
];

/// True when `action` is in [`ACTIONS`].
pub(crate) fn is_known_action(action: &str) -> bool {
    ACTIONS.iter().any(|(_, names)| names.contains(&action))
}

/// The `/audit/v1/actions` body.
pub(crate) fn actions_body() -> String {
    let groups: serde_json::Map<String, Value> = ACTIONS
        .iter()
        .map(|(group, names)| (group.to_string(), json!(names)))
        .collect();
    json!({ "actions": groups }).to_string()
}

/// The `/audit/v1/schemas` body: the fixture's types, plus the newer ones the SDK models.
pub(crate) fn schemas_body() -> String {
    json!({"schemas": [
        {"type": "workspace", "workspace": {"id": "string", "name": "string", "domain": "string"}},
        {"type": "enterprise", "enterprise": {"id": "string", "name": "string", "domain": "string"}},
        {"type": "user", "user": {"id": "string", "name": "string", "email": "string", "team": "string"}},
        {"type": "file", "file": {"id": "string", "name": "string", "filetype": "string", "title": "string"}},
        {"type": "channel", "channel": {"id": "string", "name": "string", "privacy": "string", "is_shared": "bool", "is_org_shared": "bool", "teams_shared_with": "Optional: varray<string>"}},
        {"type": "app", "app": {"id": "string", "name": "string", "is_distributed": "bool", "is_directory_approved": "bool", "is_workflow_app": "bool", "scopes": "array"}},
        {"type": "workflow", "workflow": {"id": "string", "name": "string"}},
        {"type": "barrier", "barrier": {"id": "string", "primary_usergroup": "string", "barriered_from_usergroup": "string"}},
        {"type": "message", "message": {"team": "string", "channel": "string", "timestamp": "string"}},
        {"type": "huddle", "huddle": {"id": "string", "date_start": "int", "date_end": "int", "participants": "array"}},
        {"type": "usergroup", "usergroup": {"id": "string", "name": "string"}},
        {"type": "role", "role": {"id": "string", "name": "string", "type": "string"}},
    ]})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_fixture_shapes() {
        let a: Value = serde_json::from_str(&actions_body()).unwrap();
        assert!(a["actions"]["user"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "user_login"));
        let s: Value = serde_json::from_str(&schemas_body()).unwrap();
        assert_eq!(s["schemas"][0]["type"], "workspace");
        assert!(
            is_known_action("anomaly")
                && is_known_action("pref.two_factor_auth_changed")
                && !is_known_action("nope")
        );
    }
}
