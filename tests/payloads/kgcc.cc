// kgcc.cc: built by tests/deploy.rs with kontain-g++; iostreams, containers and an
// exception unwound through the static C++ runtime, the same natively and under km.
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>

static int checked_length(const std::string &word) {
    if (word.empty())
        throw std::invalid_argument("empty word");
    return static_cast<int>(word.size());
}

int main(int argc, char **argv) {
    std::map<std::string, int> lengths;
    for (int i = 1; i < argc; i++) {
        try {
            lengths[argv[i]] = checked_length(argv[i]);
        } catch (const std::invalid_argument &e) {
            std::cout << "caught: " << e.what() << std::endl;
        }
    }
    for (const auto &[word, length] : lengths)
        std::cout << word << ": " << length << std::endl;
    return 0;
}
