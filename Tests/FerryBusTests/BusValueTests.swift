import FerryBus
import Foundation
import XCTest

final class BusValueTests: XCTestCase {
    func testSignaturesOfNestedValues() {
        XCTAssertEqual(BusValue.vardict([:]).signature, "a{sv}")
        XCTAssertEqual(BusValue.stringDictionary([:]).signature, "a{ss}")
        XCTAssertEqual(BusValue.bytes(Data()).signature, "ay")
        XCTAssertEqual(BusValue.structure([.string("s"), .vardict([:])]).signature, "(sa{sv})")
        XCTAssertEqual(BusValue.array(elementSignature: "(sssst)", []).signature, "a(sssst)")
        XCTAssertEqual(BusValue.variant(.uint32(1)).signature, "v")
        XCTAssertEqual(
            BusValue.signature(of: [.unixFD(3), .string("r"), .string("ref"), .vardict([:])]), "hssa{sv}")
    }

    func testVardictIsSortedAndWrapsValuesInVariants() {
        let value = BusValue.vardict(["b": .bool(true), "a": .uint32(1)])
        XCTAssertEqual(
            value,
            .dictionary(
                keySignature: "s", valueSignature: "v",
                [(.string("a"), .variant(.uint32(1))), (.string("b"), .variant(.bool(true)))]))
        XCTAssertEqual(value.vardictValue, ["a": .uint32(1), "b": .bool(true)])
    }

    func testAccessorsReturnNilForOtherTypes() {
        XCTAssertNil(BusValue.uint32(1).stringValue)
        XCTAssertNil(BusValue.string("x").uint32Value)
        XCTAssertNil(BusValue.stringDictionary(["a": "b"]).vardictValue)
        XCTAssertNil(BusValue.vardict(["a": .string("b")]).stringDictionaryValue)
        XCTAssertNil(BusValue.array(elementSignature: "u", [.uint32(1)]).stringArrayValue)
        XCTAssertNil(BusValue.stringArray(["a"]).bytesValue)
        XCTAssertEqual(BusValue.bytes(Data([1, 2])).bytesValue, [1, 2])
        XCTAssertEqual(BusValue.variant(.variant(.string("x"))).unwrapped, .string("x"))
    }

    /// An `ay` is one buffer (what the reader returns) or boxed bytes (built by hand): one value on the wire.
    func testByteArraysCompareEqualInEitherSpelling() {
        let boxed = BusValue.array(elementSignature: "y", [.byte(1), .byte(2)])
        XCTAssertEqual(BusValue.bytes(Data([1, 2])), boxed)
        XCTAssertEqual(boxed, BusValue.bytes(Data([1, 2])))
        XCTAssertNotEqual(BusValue.bytes(Data([1])), boxed)
        XCTAssertEqual(boxed.dataValue, Data([1, 2]))
        XCTAssertEqual(BusValue.bytes(Data([3])).bytesValue, [3])
        XCTAssertEqual(BusValue.bytes(Data()).signature, "ay")
        XCTAssertNil(BusValue.string("x").dataValue)
    }

    func testDictionariesCompareEntriesInOrder() {
        let ab = BusValue.dictionary(
            keySignature: "s", valueSignature: "s", [(.string("a"), .string("1")), (.string("b"), .string("2"))])
        let ba = BusValue.dictionary(
            keySignature: "s", valueSignature: "s", [(.string("b"), .string("2")), (.string("a"), .string("1"))])
        XCTAssertEqual(ab, ab)
        XCTAssertNotEqual(ab, ba)
        XCTAssertEqual(ab.stringDictionaryValue, ba.stringDictionaryValue)
        XCTAssertNotEqual(BusValue.array(elementSignature: "s", []), .array(elementSignature: "u", []))
    }
}
