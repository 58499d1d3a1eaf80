// The modelled timeline as a Chrome / Perfetto trace (the Trace Event JSON
// format: chrome://tracing, ui.perfetto.dev). One track (tid) per compute
// engine and per DMA queue used; one complete event ("ph":"X") per
// instruction, named by its mnemonic, with its opcode, operands (as the
// assembly listing prints them), source line and dependencies as args.
//
// Written by hand rather than with a JSON library so that ncore::ncore stays
// header-only without dependencies; strings are escaped per RFC 8259 and
// invalid UTF-8 (a tensor name is user data) becomes U+FFFD.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include <ncore/isa/cost/model.h>
#include <ncore/isa/emit/listing.h>

namespace ncore {

namespace trace_detail {

inline void number(std::string& out, double v) {
  std::array<char, 32> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), res.ptr);
}
inline void number(std::string& out, uint64_t v) { out += std::to_string(v); }

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
inline size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  // Overlong forms, surrogates and code points past U+10FFFF are invalid.
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

inline void string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
      ++i;
    } else if (c < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      ++i;
    } else if (const size_t len = utf8_len(s, i)) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

inline std::string track_name(int track) {
  return TimelineTrack::is_dma(track) ? "dma q" + std::to_string(track - TimelineTrack::kDmaBase)
                                      : std::string(engine_name(Engine(track)));
}

}  // namespace trace_detail

inline std::string chrome_trace(const Program& p, const CostReport& r) {
  namespace td = trace_detail;
  cost::check_program(p);  // a hand-made program must not send us out of bounds
  if (r.timeline.size() != p.instrs.size())
    throw Error("chrome_trace", "report",
                cat("has ", r.timeline.size(), " timings for ", p.instrs.size(),
                    " instructions: it is not this program's"));
  constexpr int kPid = 1;
  std::string out;
  out.reserve(p.instrs.size() * 320 + 1024);
  out += "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"target\":";
  td::string(out, p.target_info().name);
  out += ",\"latency_ns\":";
  td::number(out, r.latency_ns);
  out += "},\"traceEvents\":[";
  bool first = true;
  auto begin_event = [&] {
    if (!first) out += ',';
    first = false;
    out += '\n';
  };
  begin_event();
  out += "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" + std::to_string(kPid) +
         ",\"tid\":0,\"args\":{\"name\":";
  td::string(
      out, cat("ncore ", p.target_info().name, " program ", p.program_id, " of ", p.num_programs));
  out += "}}";
  // Metadata for every track used, engines first, then queues by number.
  std::array<bool, TimelineTrack::kDmaBase + 256> used{};
  for (const InstrTiming& t : r.timeline)
    if (t.track >= 0 && t.track < int(used.size())) used[size_t(t.track)] = true;
  for (int t = 0; t < int(used.size()); ++t) {
    if (!used[size_t(t)]) continue;
    begin_event();
    out += "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" + std::to_string(kPid) +
           ",\"tid\":" + std::to_string(t) + ",\"args\":{\"name\":";
    td::string(out, td::track_name(t));
    out += "}}";
    begin_event();
    out += "{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":" + std::to_string(kPid) +
           ",\"tid\":" + std::to_string(t) + ",\"args\":{\"sort_index\":" + std::to_string(t) +
           "}}";
  }
  for (size_t i = 0; i < p.instrs.size(); ++i) {
    const Instr& in = p.instrs[i];
    const InstrTiming& t = r.timeline[i];
    begin_event();
    out += "{\"ph\":\"X\",\"name\":";
    td::string(out, opcode_name(in.op));
    out += ",\"cat\":";
    td::string(out, td::track_name(t.track));
    out += ",\"pid\":" + std::to_string(kPid) + ",\"tid\":" + std::to_string(t.track) + ",\"ts\":";
    td::number(out, t.start_ns / 1000.0);
    out += ",\"dur\":";
    td::number(out, (t.end_ns - t.start_ns) / 1000.0);
    out += ",\"args\":{\"index\":";
    td::number(out, uint64_t(i));
    out += ",\"opcode\":";
    td::string(out, opcode_name(in.op));
    out += ",\"engine\":";
    td::string(out, engine_name(in.engine));
    out += ",\"operands\":";
    td::string(out, listing_detail::body(p, in));
    out += ",\"source\":";
    td::string(out, p.where(in.loc));
    if (TimelineTrack::is_dma(t.track)) {
      out += ",\"data_start_us\":";
      td::number(out, t.data_start_ns / 1000.0);
    }
    out += ",\"deps\":[";
    const auto deps = p.deps(i);
    for (size_t k = 0; k < deps.size(); ++k) {
      if (k) out += ',';
      td::number(out, uint64_t(deps[k]));
    }
    out += "]}}";
  }
  out += "\n]}\n";
  return out;
}

}  // namespace ncore
