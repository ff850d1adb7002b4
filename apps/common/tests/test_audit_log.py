def test_owner_can_read_audit_log(api):
    response = api.get("/api/v1/audit-logs")
    assert response.status_code == 200
    actions = {row["action"] for row in response.json()["results"]}
    assert "workspace.created" in actions


def test_member_cannot_read_audit_log(member_api):
    response = member_api.get("/api/v1/audit-logs/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"


def test_audit_log_filters(api, workspace, owner):
    api.patch(f"/api/v1/workspaces/{workspace.pk}", {"name": "Renamed"}, format="json")
    rows = api.get("/api/v1/audit-logs?action=workspace.updated").json()["results"]
    assert len(rows) == 1
    assert rows[0]["actor"] == str(owner.pk) and rows[0]["metadata"] == {"name": "Renamed"}
    assert rows[0]["request_id"]
    assert len(api.get(f"/api/v1/audit-logs?actor={owner.pk}").json()["results"]) == 2
    assert (
        len(api.get("/api/v1/audit-logs?target_type=workspaces.workspace").json()["results"]) == 2
    )
    assert len(api.get("/api/v1/audit-logs?from=2999-01-01T00:00:00Z").json()["results"]) == 0
    assert len(api.get("/api/v1/audit-logs?to=2000-01-01T00:00:00Z").json()["results"]) == 0
    bad = api.get("/api/v1/audit-logs?from=yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
