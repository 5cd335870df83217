// The API reference page: fetches /api/v1/openapi.json (same origin) and shows it, grouped by
// tag: each operation's parameters, body, answers and who may call it, then the schemas.
// No library and no inline script: the page's Content-Security-Policy allows neither.
"use strict";

(function () {
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children || []) if (child) node.appendChild(child);
    return node;
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  // A schema in one line: a $ref as a link to its schema, arrays and unions spelled out.
  function typeOf(schema) {
    if (!schema) return el("span", { text: "any" });
    if (schema.$ref) {
      const name = refName(schema.$ref);
      return el("a", { href: "#schema-" + name, text: name });
    }
    const alts = schema.anyOf || schema.oneOf;
    if (alts) {
      const span = el("span");
      alts.forEach((alt, i) => {
        if (i) span.appendChild(document.createTextNode(" | "));
        span.appendChild(typeOf(alt));
      });
      return span;
    }
    if (schema.type === "array" || (Array.isArray(schema.type) && schema.type.includes("array"))) {
      return el("span", {}, [document.createTextNode("array of "), typeOf(schema.items)]);
    }
    let text = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
    if (schema.const !== undefined) text += " = " + JSON.stringify(schema.const);
    else if (schema.enum) text += " (" + schema.enum.join(", ") + ")";
    if (schema.format) text += " <" + schema.format + ">";
    return el("span", { text: text });
  }

  function limits(schema) {
    const parts = [];
    for (const k of ["minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "default", "pattern"]) {
      if (schema && schema[k] !== undefined) parts.push(k + ": " + JSON.stringify(schema[k]));
    }
    return parts.join(", ");
  }

  function propertiesTable(schema) {
    const props = (schema && schema.properties) || {};
    const required = new Set((schema && schema.required) || []);
    const rows = Object.entries(props).map(([name, prop]) =>
      el("tr", {}, [
        el("td", { text: name + (required.has(name) ? " *" : "") }),
        el("td", {}, [typeOf(prop)]),
        el("td", { text: [prop.description || "", limits(prop)].filter(Boolean).join(" — ") }),
      ])
    );
    if (!rows.length) return el("p", { text: "(any fields)" });
    return el("table", {}, [
      el("tr", {}, [el("th", { text: "field" }), el("th", { text: "type" }), el("th", { text: "notes" })]),
      ...rows,
    ]);
  }

  // A schema that takes one of several object shapes (a rule across its fields) shows each
  // shape with its own fields; any other schema shows its fields.
  function shapes(schema) {
    const alts = (schema.oneOf || []).filter((alt) => alt.properties);
    if (!alts.length) return [propertiesTable(schema)];
    const out = [el("p", { class: "one-of", text: "One of " + alts.length + " shapes:" })];
    alts.forEach((alt, i) => {
      out.push(el("h4", { class: "shape", text: i + 1 + ". " + (alt.title || "shape") }));
      out.push(propertiesTable(alt));
    });
    return out;
  }

  function parametersTable(parameters) {
    return el("table", {}, [
      el("tr", {}, ["in", "name", "type", "notes"].map((t) => el("th", { text: t }))),
      ...parameters.map((p) =>
        el("tr", {}, [
          el("td", { text: p.in }),
          el("td", { text: p.name + (p.required ? " *" : "") }),
          el("td", {}, [typeOf(p.schema)]),
          el("td", { text: [p.description || "", limits(p.schema)].filter(Boolean).join(" — ") }),
        ])
      ),
    ]);
  }

  function content(contentMap) {
    const list = el("ul");
    for (const [type, media] of Object.entries(contentMap || {})) {
      list.appendChild(el("li", {}, [el("code", { text: type }), document.createTextNode(": "), typeOf(media.schema)]));
    }
    return list;
  }

  function operationBlock(path, method, op, doc) {
    const body = el("div", { class: "body" });
    if (op.description) body.appendChild(el("p", { text: op.description.replace(/\*\*/g, "") }));
    const schemes = (op.security || []).map((req) => Object.keys(req).join(" + ") || "none");
    body.appendChild(el("p", { text: "Security: " + (schemes.length ? schemes.join(" | ") : "none") }));
    if (op.parameters && op.parameters.length) {
      body.appendChild(el("h4", { text: "Parameters" }));
      body.appendChild(parametersTable(op.parameters));
    }
    if (op.requestBody) {
      body.appendChild(el("h4", { text: "Body" + (op.requestBody.required ? " (required)" : "") }));
      if (op.requestBody.description) body.appendChild(el("p", { text: op.requestBody.description }));
      body.appendChild(content(op.requestBody.content));
    }
    body.appendChild(el("h4", { text: "Answers" }));
    const answers = el("table");
    for (const [status, response] of Object.entries(op.responses || {})) {
      answers.appendChild(
        el("tr", {}, [
          el("td", { class: "status-" + status[0], text: status }),
          el("td", { text: response.description || "" }),
          el("td", {}, [content(response.content)]),
        ])
      );
    }
    body.appendChild(answers);
    const details = el("details", { class: "op", id: "op-" + op.operationId }, [
      el("summary", {}, [
        el("span", { class: "method " + method, text: method }),
        el("span", { class: "path", text: path }),
        el("span", { text: op.summary || "" }),
      ]),
      body,
    ]);
    details.dataset.search = [method, path, op.summary, (op.tags || []).join(" ")].join(" ").toLowerCase();
    return details;
  }

  function render(doc) {
    document.getElementById("api-version").textContent = doc.info.version + " (OpenAPI " + doc.openapi + ")";
    document.getElementById("api-description").textContent = doc.info.description || "";
    const groups = {};
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const tag = (op.tags && op.tags[0]) || "other";
        (groups[tag] = groups[tag] || []).push([path, method, op]);
      }
    }
    const toc = document.getElementById("toc");
    const operations = document.getElementById("operations");
    operations.textContent = "";
    for (const tag of Object.keys(groups).sort()) {
      toc.appendChild(el("a", { href: "#tag-" + tag, text: tag + " (" + groups[tag].length + ")" }));
      const section = el("section", { id: "tag-" + tag, class: "tag" }, [el("h2", { text: tag })]);
      for (const [path, method, op] of groups[tag]) section.appendChild(operationBlock(path, method, op, doc));
      operations.appendChild(section);
    }
    toc.appendChild(el("a", { href: "#security-schemes", text: "security schemes" }));
    toc.appendChild(el("a", { href: "#schemas-title", text: "schemas" }));
    const security = document.getElementById("security");
    security.appendChild(el("h2", { id: "security-schemes", text: "Security schemes" }));
    const schemes = el("table");
    for (const [name, s] of Object.entries(doc.components.securitySchemes || {})) {
      const where = s.type === "http" ? "http " + s.scheme : s.in + " " + s.name;
      schemes.appendChild(el("tr", {}, [el("td", { text: name }), el("td", { text: where }), el("td", { text: s.description || "" })]));
    }
    security.appendChild(schemes);
    const schemas = document.getElementById("schemas");
    schemas.appendChild(el("h2", { id: "schemas-title", text: "Schemas" }));
    for (const [name, schema] of Object.entries(doc.components.schemas || {})) {
      schemas.appendChild(
        el("section", { id: "schema-" + name, class: "schema" }, [
          el("h3", { text: name }),
          schema.description ? el("p", { text: schema.description }) : null,
          ...shapes(schema),
        ])
      );
    }
    document.getElementById("filter").addEventListener("input", (event) => {
      const words = event.target.value.toLowerCase().trim();
      for (const op of document.querySelectorAll(".op")) {
        op.classList.toggle("hidden", words !== "" && !op.dataset.search.includes(words));
      }
    });
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) {
        if (target.tagName === "DETAILS") target.open = true;
        target.scrollIntoView();
      }
    }
    document.body.dataset.ready = "true";
  }

  fetch("/api/v1/openapi.json", { credentials: "same-origin" })
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(render)
    .catch((error) => {
      document.getElementById("operations").textContent = "The document could not be loaded: " + error.message;
    });
})();
