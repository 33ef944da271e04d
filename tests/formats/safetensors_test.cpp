#include "ember/formats/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::formats::safetensors {
namespace {

// Writes [u64 header length][header][data] (length taken from the header unless given).
std::string make_file(const test::TempDir& dir, const std::string& name, const std::string& header,
                      const std::string& data, std::optional<uint64_t> length = std::nullopt) {
  const std::string path = dir.file(name);
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = length.value_or(header.size());
  for (int i = 0; i < 8; ++i) out.put(char(uint8_t(n >> (8 * i))));
  out << header << data;
  return path;
}

// Opens a malformed file and checks the error names the file and (if given) the tensor.
void expect_rejected(const std::string& path, const std::string& must_mention, const std::string& tensor = "") {
  try {
    File::open(path);
    ADD_FAILURE() << "accepted " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(must_mention), std::string::npos) << msg << " (wanted '" << must_mention << "')";
    if (!tensor.empty()) {
      EXPECT_NE(msg.find("'" + tensor + "'"), std::string::npos) << msg;
    }
  }
}

TEST(SafeTensors, RoundTripEveryDtype) {
  test::TempDir dir;
  Generator g(1);
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"f32", randn({2, 3}, g)},
      {"bf16", randn({4}, g, DType::BF16)},
      {"f16", randn({1, 2, 2}, g, DType::F16)},
      {"i64", arange(0, 5, 1, DType::I64)},
      {"i32", arange(-3, 3, 1, DType::I32).view({2, 3})},
      {"u8", arange(0, 16, 1, DType::U8)},
      {"bool", Tensor::from_vector(std::vector<bool>{true, false, true}, {3})},
      {"scalar", full({}, 7.5)},
      {"empty", zeros({0, 3})},
  };
  write(dir.file("a.safetensors"), ts, {{"format", "pt"}, {"note", "quote \" and\nnewline"}});
  File f = File::open(dir.file("a.safetensors"));
  EXPECT_EQ(f.header().metadata.at("format"), "pt");
  EXPECT_EQ(f.header().metadata.at("note"), "quote \" and\nnewline");
  EXPECT_EQ(f.header().data_offset() % 8, 0u);
  for (const auto& [name, t] : ts) {
    Tensor r = f.get(name);
    EXPECT_EQ(r.dtype(), t.dtype()) << name;
    EXPECT_EQ(r.shape(), t.shape()) << name;
    EXPECT_EQ(r.to_vector<float>(), t.to_vector<float>()) << name;
  }
  // Reference order: descending dtype, then name; offsets contiguous.
  std::vector<std::string> order;
  for (const auto& t : f.tensors()) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"i64", "empty", "f32", "scalar", "i32", "bf16", "f16", "u8", "bool"}));
  // Nothing left behind but the file.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(SafeTensors, ZeroCopyViewsKeepTheMappingAlive) {
  test::TempDir dir;
  write(dir.file("z.safetensors"), {{"w", arange(0, 1024, 1)}});
  Tensor t;
  const uint8_t* base = nullptr;
  {
    File f = File::open(dir.file("z.safetensors"));
    t = f.get("w");
    base = f.raw(f.info("w"));
    EXPECT_EQ(static_cast<const uint8_t*>(t.raw_data()), base);  // no copy
    EXPECT_TRUE(t.storage()->borrowed());
  }
  std::filesystem::remove(dir.file("z.safetensors"));  // mapping outlives file and File object
  EXPECT_EQ(t.select(0, 1000).item<float>(), 1000.f);
}

TEST(SafeTensors, ShardedCheckpointThroughIndex) {
  test::TempDir dir;
  write(dir.file("model-00001-of-00002.safetensors"), {{"a", ones({2})}, {"b", zeros({3})}});
  write(dir.file("model-00002-of-00002.safetensors"), {{"c", full({1}, 3.0)}});
  std::ofstream(dir.file("model.safetensors.index.json"))
      << R"({"metadata": {"total_size": 24}, "weight_map": {"a": "model-00001-of-00002.safetensors",
            "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})";
  for (const std::string& p : {dir.path(), dir.file("model.safetensors.index.json")}) {
    Checkpoint c = Checkpoint::open(p);
    EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(c.get("c").item<float>(), 3.f);
    EXPECT_EQ(c.files().size(), 2u);
    EXPECT_THROW(c.get("d"), Error);
  }
  Checkpoint single = Checkpoint::open(dir.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(single.names(), (std::vector<std::string>{"c"}));
}

TEST(SafeTensors, MalformedIndexFiles) {
  test::TempDir dir;
  write(dir.file("s.safetensors"), {{"a", ones({2})}});
  auto index = [&](const std::string& body) {
    std::ofstream(dir.file("x.safetensors.index.json")) << body;
    return dir.file("x.safetensors.index.json");
  };
  EXPECT_THROW(Checkpoint::open(index("not json")), Error);
  EXPECT_THROW(Checkpoint::open(index(R"({"weight_map": []})")), Error);
  EXPECT_THROW(Checkpoint::open(index(R"({"metadata": {}})")), Error);
  EXPECT_THROW(Checkpoint::open(index(R"({"weight_map": {"a": "missing.safetensors"}})")), Error);
  EXPECT_THROW(Checkpoint::open(index(R"({"weight_map": {"zz": "s.safetensors"}})")), Error);
  EXPECT_THROW(Checkpoint::open(index(R"({"weight_map": {"a": "../s.safetensors"}})")), Error);
  EXPECT_THROW(Checkpoint::open(index(R"({"weight_map": {"a": 3}})")), Error);
  // The same tensor in two shards.
  test::TempDir dup;
  write(dup.file("p.safetensors"), {{"a", ones({2})}});
  write(dup.file("q.safetensors"), {{"a", ones({2})}});
  EXPECT_THROW(Checkpoint::open(dup.path()), Error);
  test::TempDir none;
  EXPECT_THROW(Checkpoint::open(none.path()), Error);
}

TEST(SafeTensors, WriterRejectsBadInputAndLeavesNothing) {
  test::TempDir dir;
  const std::string p = dir.file("w.safetensors");
  EXPECT_THROW(write(p, {{"a", ones({2})}, {"a", ones({3})}}), Error);
  EXPECT_THROW(write_streaming(p, {{"x", "F32", {4}, [](const ByteSink& s) { float v = 0; s(&v, 4); }}}), Error);
  EXPECT_THROW(write_streaming(p, {{"x", "F99", {1}, [](const ByteSink&) {}}}), Error);
  EXPECT_THROW(write_streaming(p, {{"x", "U8", {1}, [](const ByteSink&) { throw Error("source failed"); }}}),
               Error);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
}

// ---- malformed files: each is rejected with an error naming the file (and tensor) ----

const std::string kGood = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafeTensorsMalformed, HeaderFraming) {
  test::TempDir d;
  {
    std::ofstream(d.file("empty.safetensors"));
    expect_rejected(d.file("empty.safetensors"), "too small");
  }
  {
    std::ofstream(d.file("short.safetensors")) << "abc";
    expect_rejected(d.file("short.safetensors"), "too small");
  }
  expect_rejected(make_file(d, "past_end.safetensors", kGood, std::string(8, '\0'), 1000), "past the end");
  expect_rejected(make_file(d, "huge_len.safetensors", kGood, "", 100'000'001), "exceeds");
  expect_rejected(make_file(d, "max_len.safetensors", kGood, "", ~0ull), "exceeds");
  expect_rejected(make_file(d, "truncated_header.safetensors", kGood.substr(0, 20), ""), "JSON");
  expect_rejected(make_file(d, "truncated_data.safetensors", kGood, std::string(5, '\0')), "truncated");
  expect_rejected(make_file(d, "trailing_data.safetensors", kGood, std::string(12, '\0')), "cover");
}

TEST(SafeTensorsMalformed, JsonShape) {
  test::TempDir d;
  const std::string data(8, '\0');
  expect_rejected(make_file(d, "not_json.safetensors", "hello world", data), "JSON");
  expect_rejected(make_file(d, "array.safetensors", "[1,2,3]", data), "object");
  expect_rejected(make_file(d, "string.safetensors", "\"x\"", data), "object");
  expect_rejected(make_file(d, "bad_utf8.safetensors", "{\"\xff\xfe\":1}", data), "UTF-8");
  expect_rejected(make_file(d, "overlong_utf8.safetensors", "{\"\xc0\xaf\":1}", data), "UTF-8");
  expect_rejected(make_file(d, "surrogate_utf8.safetensors", "{\"\xed\xa0\x80\":1}", data), "UTF-8");
  expect_rejected(make_file(d, "dup_tensor.safetensors",
                            R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            data),
                  "more than once");
  expect_rejected(make_file(d, "dup_field.safetensors",
                            R"({"t":{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}})", data),
                  "more than once");
  expect_rejected(make_file(d, "entry_not_object.safetensors", R"({"t":[1,2]})", data), "object", "t");
  expect_rejected(make_file(d, "meta_not_strings.safetensors",
                            R"({"__metadata__":{"a":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
                  "not a string");
  expect_rejected(make_file(d, "meta_not_object.safetensors",
                            R"({"__metadata__":"x","t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
                  "__metadata__");
}

TEST(SafeTensorsMalformed, TensorFields) {
  test::TempDir d;
  const std::string data(8, '\0');
  auto one = [&](const std::string& file, const std::string& entry, const std::string& mention) {
    expect_rejected(make_file(d, file, "{\"w\":" + entry + "}", data), mention, "w");
  };
  one("no_dtype.safetensors", R"({"shape":[2],"data_offsets":[0,8]})", "missing field 'dtype'");
  one("no_shape.safetensors", R"({"dtype":"F32","data_offsets":[0,8]})", "missing field 'shape'");
  one("no_offsets.safetensors", R"({"dtype":"F32","shape":[2]})", "missing field 'data_offsets'");
  one("unknown_dtype.safetensors", R"({"dtype":"F128","shape":[2],"data_offsets":[0,8]})", "unknown dtype");
  one("dtype_number.safetensors", R"({"dtype":3,"shape":[2],"data_offsets":[0,8]})", "dtype");
  one("negative_dim.safetensors", R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", "non-negative");
  one("float_dim.safetensors", R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", "non-negative");
  one("shape_not_array.safetensors", R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})", "shape");
  one("size_mismatch.safetensors", R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", "needs 12");
  one("begin_after_end.safetensors", R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})", "end before begin");
  one("offsets_three.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[0,4,8]})", "data_offsets");
  one("offset_gap.safetensors", R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})", "gap");
  one("out_of_bounds.safetensors", R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})", "truncated");
  one("overflow_shape.safetensors",
      R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]})", "overflows");
  one("overflow_bytes.safetensors", R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})",
      "overflows");
  one("half_byte.safetensors", R"({"dtype":"F4","shape":[3],"data_offsets":[0,8]})", "whole bytes");
  one("too_big_number.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]})",
      "non-negative");
  // Two tensors overlapping.
  expect_rejected(make_file(d, "overlap.safetensors",
                            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                            data),
                  "overlap", "b");
}

TEST(SafeTensorsMalformed, ValidButUnusualFilesAreAccepted) {
  test::TempDir d;
  // Empty header object, whitespace, out-of-order entries and unknown extra fields: the reference
  // accepts them all.
  EXPECT_NO_THROW(File::open(make_file(d, "empty_obj.safetensors", "{}", "")));
  EXPECT_NO_THROW(File::open(make_file(d, "spaces.safetensors", "  {}    ", "")));
  File f = File::open(make_file(
      d, "order.safetensors",
      R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6],"extra":1},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
      std::string("\x01\x00\x00\x00\x07\x08", 6)));
  EXPECT_EQ(f.tensors()[0].name, "a");
  EXPECT_EQ(f.get("a").item<int64_t>(), 1);
  // A valid dtype ember has no type for lists fine but get() explains.
  File g = File::open(make_file(d, "f64.safetensors", R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})",
                                std::string(8, '\0')));
  EXPECT_EQ(g.info("x").dtype, "F64");
  EXPECT_THROW(g.get("x"), Error);
  // Misaligned data is copied, not read unaligned.
  File h = File::open(make_file(d, "odd.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} )",
                                std::string("\x00\x00\x80\x3f", 4)));
  EXPECT_EQ(h.get("x").item<float>(), 1.0f);
}

// Files written by the reference Python library, when present (tests/golden/safetensors_compat.py).
TEST(SafeTensors, ReadsReferenceWrittenFiles) {
  const std::string dir = std::string(EMBER_TEST_DATA_DIR) + "/safetensors";
  if (!std::filesystem::exists(dir + "/reference.safetensors")) {
    GTEST_SKIP() << "no reference file in " << dir;
  }
  File f = File::open(dir + "/reference.safetensors");
  EXPECT_EQ(f.get("arange_f32").to_vector<float>(), arange(0, 6, 1).to_vector<float>());
  EXPECT_EQ(f.get("arange_bf16").to(DType::F32).to_vector<float>(), arange(0, 6, 1).to_vector<float>());
  EXPECT_EQ(f.get("ids_i64").to_vector<int64_t>(), (std::vector<int64_t>{3, 1, 4, 1, 5}));
  EXPECT_EQ(f.header().metadata.at("writer"), "safetensors-python");
  // And our writer produces the same bytes for the same tensors.
  test::TempDir d;
  write(d.file("ours.safetensors"), {{"arange_f32", arange(0, 6, 1).view({2, 3})},
                                     {"arange_bf16", arange(0, 6, 1, DType::BF16)},
                                     {"ids_i64", Tensor::from_vector(std::vector<int64_t>{3, 1, 4, 1, 5}, {5})}},
        {{"writer", "safetensors-python"}});
  std::ifstream a(dir + "/reference.safetensors", std::ios::binary), b(d.file("ours.safetensors"), std::ios::binary);
  std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(sa, sb);
}

}  // namespace
}  // namespace ember::formats::safetensors
