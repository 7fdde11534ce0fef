// Prepares each Directus instance of the compose mesh the way an operator would for dxsync:
// an `articles` collection (accountability "all"), a non-admin "dxsync" policy with plain CRUD
// on it and create/read on notifications, a "dxsync" role, and the sync user with the static
// token dxsync is configured with. Idempotent. Runs on the Directus image's Node 22.
//   TARGETS="http://directus-a:8055=TOKEN_A http://directus-b:8055=TOKEN_B" ADMIN_TOKEN=... node prepare.mjs
const admin = process.env.ADMIN_TOKEN;
const targets = (process.env.TARGETS || "").split(/\s+/).filter(Boolean).map((t) => {
  const i = t.lastIndexOf("=");
  return { url: t.slice(0, i), token: t.slice(i + 1) };
});

async function api(url, method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

async function waitUp(url) {
  for (let i = 0; i < 120; i++) {
    try { if ((await fetch(url + "/server/ping")).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`${url} did not come up`);
}

async function byName(url, ep, name, create) {
  const q = `/${ep}?filter[name][_eq]=${encodeURIComponent(name)}&fields=id`;
  const found = (await api(url, "GET", q)).data;
  return found.length ? found[0].id : (await api(url, "POST", `/${ep}`, create)).data.id;
}

async function prepare({ url, token }) {
  await waitUp(url);
  const have = await fetch(url + "/collections/articles", { headers: { Authorization: `Bearer ${admin}` } });
  if (!have.ok) {
    await api(url, "POST", "/collections", {
      collection: "articles", meta: { accountability: "all" }, schema: {},
      fields: [
        { field: "id", type: "uuid", meta: { special: ["uuid"], hidden: true, readonly: true }, schema: { is_primary_key: true, length: 36 } },
        { field: "title", type: "string", meta: {}, schema: {} },
        { field: "body", type: "text", meta: {}, schema: {} },
        { field: "rating", type: "integer", meta: {}, schema: {} },
      ],
    });
  }
  const policy = await byName(url, "policies", "dxsync", { name: "dxsync", app_access: false, admin_access: false });
  const perms = [["articles", "create"], ["articles", "read"], ["articles", "update"], ["articles", "delete"],
    ["directus_notifications", "create"], ["directus_notifications", "read"],
    ["directus_users", "read"], ["directus_collections", "read"], ["directus_fields", "read"],
    ["directus_permissions", "read"], ["directus_policies", "read"]];
  for (const [collection, action] of perms) {
    const q = `/permissions?filter[policy][_eq]=${policy}&filter[collection][_eq]=${collection}&filter[action][_eq]=${action}&fields=id`;
    if (!(await api(url, "GET", q)).data.length)
      await api(url, "POST", "/permissions", { policy, collection, action, fields: ["*"], permissions: {}, validation: {} });
  }
  const role = await byName(url, "roles", "dxsync", { name: "dxsync", policies: [{ policy }] });
  const users = (await api(url, "GET", "/users?filter[email][_eq]=dxsync%40example.com&fields=id")).data;
  const id = users.length ? users[0].id
    : (await api(url, "POST", "/users", { email: "dxsync@example.com", role, status: "active" })).data.id;
  await api(url, "PATCH", `/users/${id}`, { role, status: "active", token, email_notifications: false });
  console.log(`${url}: sync user ${id} ready`);
}

for (const t of targets) await prepare(t);
