#include "ember/formats/npy.h"

#include <gtest/gtest.h>

#include <fstream>

#include "ember/ops.h"
#include "test_util.h"

namespace ember::formats::npy {
namespace {

TEST(Npy, RoundTripAndHeaderLayout) {
  test::TempDir d;
  for (const Tensor& t : {arange(0, 12, 1).view({3, 4}), arange(0, 5, 1, DType::I64), full({}, 2.5),
                          Tensor::from_vector(std::vector<bool>{true, false}, {2})}) {
    write(d.file("a.npy"), t);
    Tensor r = read(d.file("a.npy"));
    EXPECT_EQ(r.shape(), t.shape());
    EXPECT_EQ(r.dtype(), t.dtype());
    EXPECT_EQ(r.to_vector<float>(), t.to_vector<float>());
  }
  write(d.file("b.npy"), arange(0, 3, 1).view({1, 3}));
  std::ifstream in(d.file("b.npy"), std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(s.substr(1, 5), "NUMPY");
  EXPECT_NE(s.find("'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }"), std::string::npos);
  EXPECT_EQ((s.size() - 12) % 4, 0u);
  EXPECT_EQ(s[s.size() - 13], '\n');  // header ends in a newline before the data
  write(d.file("c.npy"), arange(0, 2, 1, DType::BF16));
  EXPECT_EQ(read(d.file("c.npy")).dtype(), DType::F32);
}

TEST(Npy, MalformedFiles) {
  test::TempDir d;
  auto file = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(d.file(name), std::ios::binary) << bytes;
    return d.file(name);
  };
  EXPECT_THROW(read(file("empty.npy", "")), Error);
  EXPECT_THROW(read(file("magic.npy", "NOTNUMPYxxxxxxxx")), Error);
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n";
  auto npy = [&](const std::string& header, const std::string& data) {
    std::string s = "\x93NUMPY\x01";
    s += '\0';
    s += char(header.size() & 0xff);
    s += char(header.size() >> 8);
    return s + header + data;
  };
  EXPECT_THROW(read(file("short.npy", npy(h, std::string(8, '\0')))), Error);
  EXPECT_THROW(read(file("long.npy", npy(h, std::string(16, '\0')))), Error);
  EXPECT_THROW(read(file("f8.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n", std::string(8, '\0')))), Error);
  EXPECT_THROW(read(file("fortran.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", std::string(4, '\0')))), Error);
  EXPECT_THROW(read(file("hlen.npy", npy(std::string(5000, ' '), ""))), Error);
  EXPECT_NO_THROW(read(file("ok.npy", npy(h, std::string(12, '\0')))));
}

}  // namespace
}  // namespace ember::formats::npy
