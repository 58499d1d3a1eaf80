// The Chrome trace: valid JSON (parsed with nlohmann), one complete event per
// instruction on its engine's or queue's track, durations equal to the
// report's, args as the listing prints them, and hostile strings escaped.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include <ncore/isa/cost/trace.h>
#include <ncore/isa/emit/emitter.h>
#include <ncore/kernels/gemm.h>

namespace ncore {
namespace {

using nlohmann::json;
constexpr DType f32 = DType::kF32, bf16 = DType::kBF16;

Program small_gemm(const Target& t) {
  return emit(t, [](DeviceCore& nc) {
    auto a = nc.hbm("A", bf16, {256, 384});
    auto b = nc.hbm("B", bf16, {384, 600});
    auto c = nc.hbm("C", f32, {256, 600}, HbmKind::kOutput);
    gemm(nc, c, a, b);
  });
}

std::vector<json> complete_events(const json& doc) {
  std::vector<json> out;
  for (const json& e : doc.at("traceEvents"))
    if (e.at("ph") == "X") out.push_back(e);
  return out;
}

TEST(ChromeTrace, OneEventPerInstructionWithTheReportsTimes) {
  for (const Target* t : {&kTrn1, &kTrn2}) {
    const Program p = small_gemm(*t);
    const CostReport r = model(p);
    const json doc = json::parse(chrome_trace(p, r));
    EXPECT_EQ(doc.at("otherData").at("target"), std::string(t->name));
    EXPECT_DOUBLE_EQ(doc.at("otherData").at("latency_ns").get<double>(), r.latency_ns);
    const auto events = complete_events(doc);
    ASSERT_EQ(events.size(), p.instrs.size());
    std::set<int> tids;
    for (size_t i = 0; i < events.size(); ++i) {
      const json& e = events[i];
      const Instr& in = p.instrs[i];
      const InstrTiming& ti = r.timeline[i];
      EXPECT_EQ(e.at("args").at("index").get<size_t>(), i);
      EXPECT_EQ(e.at("name"), std::string(opcode_name(in.op)));
      EXPECT_EQ(e.at("args").at("opcode"), std::string(opcode_name(in.op)));
      EXPECT_EQ(e.at("tid").get<int>(), ti.track);
      // Microseconds, written with round-trip precision.
      EXPECT_EQ(e.at("ts").get<double>(), ti.start_ns / 1000.0);
      EXPECT_EQ(e.at("dur").get<double>(), (ti.end_ns - ti.start_ns) / 1000.0);
      EXPECT_EQ(e.at("args").at("operands"), listing_detail::body(p, in));
      EXPECT_EQ(e.at("args").at("source"), p.where(in.loc));
      const auto deps = p.deps(i);
      EXPECT_EQ(e.at("args").at("deps").get<std::vector<uint32_t>>(),
                std::vector<uint32_t>(deps.begin(), deps.end()));
      tids.insert(ti.track);
    }
    // Each track used is named: engines by name, queues as "dma q<n>".
    std::set<int> named;
    for (const json& e : doc.at("traceEvents")) {
      if (e.at("ph") != "M" || e.at("name") != "thread_name") continue;
      const int tid = e.at("tid").get<int>();
      named.insert(tid);
      const std::string name = e.at("args").at("name");
      if (tid < TimelineTrack::kDmaBase)
        EXPECT_EQ(name, std::string(engine_name(Engine(tid))));
      else
        EXPECT_EQ(name, "dma q" + std::to_string(tid - TimelineTrack::kDmaBase));
    }
    EXPECT_EQ(named, tids);
    EXPECT_TRUE(tids.count(int(Engine::kTensor)));
    EXPECT_TRUE(tids.count(int(Engine::kVector)));
  }
}

TEST(ChromeTrace, EscapesHostileNamesIntoValidJson) {
  // Quotes, backslashes, control bytes and invalid UTF-8 in a tensor name,
  // which the listing prints into the operands.
  const std::string hostile = std::string("a\"b\\c\n\t\x01 \xff\xc3(\xe2\x82\xac ok");
  const Program p = emit(kTrn2, [&](DeviceCore& nc) {
    auto x = nc.hbm(hostile, f32, {128, 64});
    nc.dma(nc.sbuf(f32, 128, {64}), x);
  });
  const std::string text = chrome_trace(p, model(p));
  json doc;
  ASSERT_NO_THROW(doc = json::parse(text));
  const std::string ops = complete_events(doc).at(0).at("args").at("operands");
  EXPECT_NE(ops.find("a\"b\\c\n\t\x01 "), std::string::npos);
  EXPECT_NE(ops.find("\xef\xbf\xbd"), std::string::npos);     // U+FFFD for the bad bytes
  EXPECT_NE(ops.find("\xe2\x82\xac ok"), std::string::npos);  // valid UTF-8 kept
}

TEST(ChromeTrace, RejectsAReportOfAnotherProgram) {
  const Program p = small_gemm(kTrn2);
  CostReport r = model(p);
  r.timeline.pop_back();
  EXPECT_THROW(chrome_trace(p, r), Error);
}

}  // namespace
}  // namespace ncore
