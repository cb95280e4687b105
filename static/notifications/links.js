// Which stored URLs may become an href: a path of this site or an http(s) URL, judged as the
// browser will read it. Kept in step with notifications/models.py by tests/data/link_urls.json.

// Browsers strip leading and trailing C0 controls and spaces, and drop tab, LF and CR
// anywhere: "/\t/evil.com" is "//evil.com", another host, as is "/\\evil.com".
const OUTER = /^[\u0000-\u0020]+|[\u0000-\u0020]+$/g;
const LINK = /^(?:\/(?![/\\])|https?:\/\/)/i;

export function safeHref(url) {
  if (typeof url !== "string") return null;
  const read = url.replace(OUTER, "").replace(/[\t\n\r]/g, "");
  return LINK.test(read) ? url : null;
}
