//! The plugin's allocator: free lists by size class over the system's.
//!
//! A handler call allocates dozens of small, short-lived blocks: the event's
//! strings lowered by the host, serde_json's maps and strings, the emits.
//! wasm32's default (wasi-libc's dlmalloc, reached through two shims) spent
//! about a fifth of a reused instance's call in `malloc` and `free`
//! (BENCHMARKS.md, P2). Here a block of up to 4 KiB is rounded up to a power
//! of two and taken from that size's free list, or else cut from the newest
//! chunk, which every class shares; freeing pushes it back on its list. Both
//! are a few instructions, with no search, split or merge. Larger blocks,
//! and alignments above 16 bytes, go to the system allocator unchanged.
//!
//! What it trades: a block takes up to twice its size, and a freed block is
//! only ever reused for its own size class, never returned or merged. A
//! plugin's small blocks therefore take the sum of each class's peak, where
//! dlmalloc would reuse one class's freed memory for another; the host
//! replaces a reused instance every 10,000 calls and caps its memory
//! (`memory_mib`). A plugin that wants another allocator turns off this
//! crate's default `allocator` feature and declares its own
//! `#[global_allocator]`.
//!
//! Single-threaded by design, as a wasm32 plugin is: the global instance
//! exists only on wasm32 without the `atomics` feature. On other targets
//! the type is built for its unit tests only.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

/// The smallest block: 16 bytes, as `1 << MIN_SHIFT`.
const MIN_SHIFT: u32 = 4;
/// The largest block taken from a size class: 4 KiB, as `1 << MAX_SHIFT`.
const MAX_SHIFT: u32 = 12;
/// The number of size classes, 16 bytes to 4 KiB.
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// The largest alignment a class serves; every block is aligned to it.
const ALIGN: usize = 16;
/// The memory asked of the system at once, shared by every class. Small, so
/// that a fresh instance, which runs one call, touches few new pages.
const CHUNK: usize = 8 << 10;

/// The allocator's own state.
struct Lists {
    /// Per class, a freed block holding the address of the next one (null
    /// at the end).
    free: [*mut u8; CLASSES],
    /// The next byte not yet handed out in the newest chunk.
    next: *mut u8,
    /// The end of the newest chunk.
    end: *mut u8,
}

/// Size-class free lists over `B`, the allocator that supplies chunks and
/// serves what the classes do not.
pub(crate) struct Classes<B> {
    lists: UnsafeCell<Lists>,
    backing: B,
}

impl<B> Classes<B> {
    /// An allocator with nothing allocated yet, over `backing`.
    pub(crate) const fn new(backing: B) -> Self {
        Classes {
            lists: UnsafeCell::new(Lists {
                free: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                end: ptr::null_mut(),
            }),
            backing,
        }
    }
}

/// The class index of `layout`, or `None` when the backing allocator serves it.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(1 << MIN_SHIFT);
    if size > 1 << MAX_SHIFT || layout.align() > ALIGN {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

/// The block size of class `index`.
fn block_size(index: usize) -> usize {
    1 << (index as u32 + MIN_SHIFT)
}

unsafe impl<B: GlobalAlloc> GlobalAlloc for Classes<B> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(index) = class_of(layout) else {
            return unsafe { self.backing.alloc(layout) };
        };
        // SAFETY: single-threaded (see the module's docs), and nothing here
        // calls back into this allocator while the borrow is live.
        let lists = unsafe { &mut *self.lists.get() };
        let free = &mut lists.free[index];
        if !free.is_null() {
            let block = *free;
            // SAFETY: a freed block holds the next one's address.
            *free = unsafe { block.cast::<*mut u8>().read() };
            return block;
        }
        let size = block_size(index);
        if (lists.end as usize - lists.next as usize) < size {
            // What is left of the chunk (under 4 KiB) is not used.
            // SAFETY: a non-zero size and a power-of-two alignment.
            let start = unsafe {
                self.backing
                    .alloc(Layout::from_size_align_unchecked(CHUNK, ALIGN))
            };
            if start.is_null() {
                return start;
            }
            lists.next = start;
            lists.end = start.wrapping_add(CHUNK);
        }
        let block = lists.next;
        lists.next = block.wrapping_add(size);
        block
    }

    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(index) = class_of(layout) else {
            return unsafe { self.backing.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`; `block` came from this class, which is at
        // least 16 bytes, so it can hold the next free block's address.
        unsafe {
            let free = &mut (*self.lists.get()).free[index];
            block.cast::<*mut u8>().write(*free);
            *free = block;
        }
    }

    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: `layout.align()` is a power of two
        // and `new_size` rounded up to it does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            (Some(old), Some(new)) if old == new => block,
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            _ => unsafe {
                let moved = self.alloc(new_layout);
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                moved
            },
        }
    }
}

/// The plugin's global allocator (see the module's docs).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
struct Global(Classes<std::alloc::System>);

// SAFETY: a wasm32 plugin without the `atomics` feature has one thread.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Global {}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl GlobalAlloc for Global {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { self.0.alloc(layout) }
    }
    #[inline]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(block, layout) }
    }
    #[inline]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { self.0.realloc(block, layout, new_size) }
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static GLOBAL: Global = Global(Classes::new(std::alloc::System));

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn layouts_map_to_the_smallest_class_that_holds_size_and_alignment() {
        let class = |size, align| class_of(Layout::from_size_align(size, align).unwrap());
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 1), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(class(8, 16), Some(0));
        assert_eq!(class(8, 32), None);
        assert_eq!(class(4096, 8), Some(CLASSES - 1));
        assert_eq!(class(4097, 1), None);
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused_only_within_their_class() {
        let a = Classes::new(System);
        let layouts: Vec<Layout> = (0..2000)
            .map(|i| Layout::from_size_align(1 + (i * 37) % 6000, 1 << (i % 7)).unwrap())
            .collect();
        let fill = |block: *mut u8, layout: Layout, byte: u8| unsafe {
            ptr::write_bytes(block, byte, layout.size());
        };
        let check = |block: *const u8, layout: Layout, byte: u8| {
            let bytes = unsafe { std::slice::from_raw_parts(block, layout.size()) };
            assert!(bytes.iter().all(|b| *b == byte), "a block was overwritten");
        };
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for (i, layout) in layouts.iter().enumerate() {
            let block = unsafe { a.alloc(*layout) };
            assert!(!block.is_null());
            assert_eq!(block as usize % layout.align(), 0, "misaligned");
            fill(block, *layout, i as u8);
            live.push((block, *layout, i as u8));
            // Free every third block so that later ones reuse them.
            if i % 3 == 2 {
                let (block, layout, byte) = live.swap_remove(i % live.len());
                check(block, layout, byte);
                unsafe { a.dealloc(block, layout) };
            }
        }
        for (block, layout, byte) in &live {
            check(*block, *layout, *byte);
        }
        // Growing a block keeps its bytes, within a class and across.
        let (block, layout, byte) = live.pop().unwrap();
        let grown = unsafe { a.realloc(block, layout, layout.size() * 3 + 5000) };
        check(grown, layout, byte);
        for (block, layout, _) in live {
            unsafe { a.dealloc(block, layout) };
        }
        // The chunks stay with their classes: freed, never returned (the
        // module's docs); the test leaks them.
    }

    #[test]
    fn a_freed_block_is_the_next_one_of_its_class() {
        let a = Classes::new(System);
        let layout = Layout::from_size_align(24, 8).unwrap();
        let first = unsafe { a.alloc(layout) };
        let second = unsafe { a.alloc(layout) };
        assert_ne!(first, second);
        unsafe { a.dealloc(first, layout) };
        let other = Layout::from_size_align(100, 8).unwrap();
        assert_ne!(unsafe { a.alloc(other) }, first, "another class took it");
        assert_eq!(unsafe { a.alloc(layout) }, first);
        let same_class = unsafe { a.realloc(first, layout, 30) };
        assert_eq!(same_class, first, "24 and 30 bytes share the 32-byte class");
    }
}
