"""Which permission scope each endpoint needs, and which endpoints are exempt from the monthly quota.

Legacy `60011` ("no permission for this API") does not say which scope is missing, so the client
looks the endpoint up here to tell the admin what to tick in the developer console. The new API
names the scope itself (`accessdenieddetail.requiredScopes`), which always wins over this table.

Every entry is from dingtalk-api.md; endpoints whose scope the reference does not state are left
out (the error then says the scope is undocumented) rather than guessed.
"""

from __future__ import annotations

# endpoint path template -> scope the reference documents for it
ENDPOINT_SCOPES: dict[str, str] = {
    # contacts (§1.5 names 成员信息读权限 qyapi_get_member for member reads)
    "/topapi/v2/user/list": "qyapi_get_member",
    "/topapi/v2/user/get": "qyapi_get_member",
    "/topapi/user/listid": "qyapi_get_member",
    "/v1.0/contact/empLeaveRecords": "Contact.Common.Read",
    "/v1.0/hrm/employees/dismissions": "qyapi_hrm_read_user",
    # approvals (§4)
    "/v1.0/workflow/processes/managements/templates": "Workflow.Form.Read",
    "/v1.0/workflow/processes/instanceIds/query": "Workflow.Instance.Read",
    "/v1.0/workflow/processInstances": "Workflow.Instance.Read",
    # Reading an attachment needs the *write* scope (§4.4).
    "/v1.0/workflow/processInstances/spaces/files/urls/download": "Workflow.Instance.Write",
    # files and documents (§5)
    "/v1.0/drive/spaces": "Drive.Space.Read",
    "/v1.0/convFile/conversations/spaces/query": "ConvFile.Space.Read",
    "/v2.0/wiki/workspaces": "Wiki.Workspace.Read",
    "/v2.0/wiki/mineWorkspaces": "Wiki.Workspace.Read",
    "/v2.0/wiki/nodes": "Wiki.Node.Read",
    "/v1.0/storage/spaces/{spaceId}/dentries": "Storage.File.Read",
    "/v1.0/storage/spaces/{spaceId}/dentries/listAll": "Storage.File.Read",
    "/v1.0/storage/spaces/{spaceId}/dentries/{dentryId}/versions": "Storage.File.Read",
    "/v1.0/storage/spaces/{spaceId}/dentries/{dentryId}/downloadInfos/query": "Storage.DownloadInfo.Read",
    "/v1.0/doc/suites/documents/{docKey}/blocks": "Storage.File.Read",
    "/v1.0/storage/events/subscribe": "Storage.Event.Write",
    # other business data (§6)
    "/v1.0/calendar/users/{userId}/calendars/{calendarId}/events": "Calendar.Event.Read",
    "/v1.0/todo/users/{unionId}/org/tasks/query": "Todo.Todo.Read",
    "/topapi/report/list": "qyapi_report_query",
    # groups and robots (§3)
    "/chat/get": "qyapi_chat_read",
    "/v1.0/robot/messageFiles/download": "qyapi_robot_sendmsg",
    # exclusive edition (§3.5, §6.5)
    "/v1.0/exclusive/securities/orgGroupInfos": "Custom.Group.Read",
    "/v1.0/exclusive/fileAuditLogs": "Custom.OpFileAudit.Read",
}

# Endpoints exempt from the standard edition's monthly call quota (§0.5): token, SSO and contacts.
QUOTA_EXEMPT: frozenset[str] = frozenset(
    {
        "/v1.0/oauth2/accessToken",
        "/v1.0/oauth2/userAccessToken",
        "/gettoken",
        "/topapi/v2/user/get",
        "/topapi/v2/user/list",
        "/topapi/user/listid",
        "/topapi/v2/department/get",
        "/topapi/v2/department/listsub",
        "/topapi/v2/department/listsubid",
        "/v1.0/contact/empLeaveRecords",
        "/v1.0/hrm/employees/dismissions",
        "/v1.0/hrm/employees/dimissionInfos",
    }
)


def scope_for(endpoint: str) -> str | None:
    return ENDPOINT_SCOPES.get(endpoint)
