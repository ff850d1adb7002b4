def test_owner_can_read_audit_log(api):
    response = api.get("/api/v1/audit-logs")
    assert response.status_code == 200
    actions = {row["action"] for row in response.json()["results"]}
    assert "workspace.created" in actions


def test_member_cannot_read_audit_log(member_api):
    response = member_api.get("/api/v1/audit-logs/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"
