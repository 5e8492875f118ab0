#!/usr/bin/env python3
"""Reference for `trajforge export`'s token accounting, done the Hugging Face way in Python:
the chat template rendered with jinja2 exactly as transformers' apply_chat_template sets it up
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson and
raise_exception), token counts from the `tokenizers` library, and truncation after the last
assistant turn that fits (binary search, each probe re-rendered and re-encoded).

  hf_export_reference.py conversations TOKENIZER_JSON TEMPLATE_JSON IN.jsonl MAX_TOKENS OUT.jsonl
      IN lines: {"messages": [...], "tools": [...] | null, "tool_texts": [...]} (already in the
      template's form); OUT lines: {"total", "tokens", "keep", "tool_mean"}.
  hf_export_reference.py store TOKENIZER_DIR RUN_DB MAX_TOKENS MIN_RATIO OUT.jsonl
      The same work as `trajforge export --format openai` with a tokenizer whose template handles
      tools: read the store, select kept submitted trajectories, convert to OpenAI messages,
      count, truncate, write the rows. Prints the number of rows written.
"""
import json
import sqlite3
import sys

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise ValueError(message)


def compile_template(source):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


class Counter:
    def __init__(self, tokenizer, template, bos, eos):
        self.tok = tokenizer
        self.template = template
        self.bos = bos or ""
        self.eos = eos or ""

    def render(self, messages, tools):
        return self.template.render(messages=messages, tools=tools, add_generation_prompt=False,
                                    bos_token=self.bos, eos_token=self.eos)

    def count(self, text):
        return len(self.tok.encode(text, add_special_tokens=False).ids)

    def measure(self, messages, tools, tool_texts, max_tokens):
        total = self.count(self.render(messages, tools))
        tool_mean = sum(self.count(t) for t in tool_texts) / len(tool_texts) if tool_texts else 0.0
        if max_tokens <= 0 or total <= max_tokens:
            return total, total, len(messages), tool_mean
        cuts = [i + 1 for i, m in enumerate(messages) if m["role"] == "assistant" and i + 1 < len(messages)]
        lo, hi, best = 0, len(cuts), (0, 0)
        while lo < hi:
            mid = (lo + hi) // 2
            n = self.count(self.render(messages[:cuts[mid]], tools))
            if n <= max_tokens:
                best = (cuts[mid], n)
                lo = mid + 1
            else:
                hi = mid
        return total, best[1], best[0], tool_mean


def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def load_dir(path):
    tok = Tokenizer.from_file(f"{path}/tokenizer.json")
    with open(f"{path}/tokenizer_config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    tpl = cfg["chat_template"]
    if isinstance(tpl, list):
        tpl = next((t["template"] for t in tpl if t.get("name") == "default"), tpl[0]["template"])
    return Counter(tok, compile_template(tpl), token_text(cfg.get("bos_token")), token_text(cfg.get("eos_token")))


def think_text(m):
    reasoning = (m.get("reasoning") or "").strip()
    visible = (m.get("content") or "").strip()
    if m.get("reasoning") is None and visible.startswith("<think>"):
        return visible
    block = f"<think>\n{reasoning}\n</think>" if reasoning else "<think>\n\n</think>"
    return f"{block}\n\n{visible}" if visible else block


def openai_messages(t):
    out = []
    for m in t["messages"]:
        role = m["role"]
        if role == "assistant":
            v = {"role": "assistant", "content": think_text(m)}
            if m.get("tool_calls"):
                v["tool_calls"] = [{"id": c["id"], "type": "function",
                                    "function": {"name": c["name"], "arguments": c["arguments"]}}
                                   for c in m["tool_calls"]]
            out.append(v)
        elif role == "tool":
            out.append({"role": "tool", "content": m.get("content") or "",
                        "tool_call_id": m.get("tool_call_id") or "", "name": m.get("name") or ""})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    return out


def main():
    mode = sys.argv[1]
    if mode == "conversations":
        _, _, tok_path, tpl_path, inp, max_tokens, outp = sys.argv
        with open(tpl_path, encoding="utf-8") as f:
            tpl = json.load(f)
        counter = Counter(Tokenizer.from_file(tok_path), compile_template(tpl["template"]), tpl.get("bos"), tpl.get("eos"))
        with open(inp, encoding="utf-8") as f, open(outp, "w", encoding="utf-8") as out:
            for line in f:
                c = json.loads(line)
                total, tokens, keep, tool_mean = counter.measure(c["messages"], c["tools"], c["tool_texts"], int(max_tokens))
                out.write(json.dumps({"total": total, "tokens": tokens, "keep": keep, "tool_mean": tool_mean}) + "\n")
        return
    if mode == "store":
        _, _, tok_dir, db, max_tokens, min_ratio, outp = sys.argv
        counter = load_dir(tok_dir)
        max_tokens, min_ratio = int(max_tokens), float(min_ratio)
        conn = sqlite3.connect(db)
        rows = conn.execute("SELECT id, job_id, attempt, rollout, recall, data FROM trajectories "
                            "WHERE kept = 1 AND exit_status = 'submitted' ORDER BY job_id, attempt, rollout")
        written = 0
        with open(outp, "w", encoding="utf-8") as out:
            for rid, job, attempt, rollout, recall, data in rows:
                t = json.loads(data)
                messages = openai_messages(t)
                tools = [{"type": "function", "function": {"name": s["name"], "description": s["description"],
                                                           "parameters": s["parameters"]}} for s in t["tools"]] or None
                tool_texts = [m["content"] for m in messages if m["role"] == "tool"]
                total, tokens, keep, tool_mean = counter.measure(messages, tools, tool_texts, max_tokens)
                ratio = keep / len(messages) if messages else 1.0
                if keep == 0 or ratio < min_ratio:
                    continue
                row = {"id": f"{job}-{attempt}-{rollout}", "rollout": rollout, "recall": recall,
                       "tokens": tokens, "truncation_ratio": ratio, "messages": messages[:keep], "tools": tools or []}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
        print(written)
        return
    sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
